"""Dashboard routes of training; config/urls.py mounts them into the dashboard's namespace."""

from django.urls import path

from training import dashboard

urlpatterns = [
    path("training", dashboard.training, name="training"),
    path("training/start", dashboard.train_now, name="train_now"),
    path("training/schedule", dashboard.training_schedule, name="training_schedule"),
    path("models", dashboard.models, name="models"),
    path("models/<int:version_id>", dashboard.model_detail, name="model_detail"),
    path("models/<int:version_id>/activate", dashboard.model_activate, name="model_activate"),
    path("models/<int:version_id>/rollback", dashboard.model_rollback, name="model_rollback"),
]
