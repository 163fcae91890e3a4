"""The Experiments pages (in the `dashboard` namespace, config/urls.py)."""

from django.urls import path

from experiments import dashboard

urlpatterns = [
    path("experiments", dashboard.experiments_page, name="experiments"),
    path("experiments/new", dashboard.experiment_new, name="experiment_new"),
    path("experiments/<int:pk>", dashboard.experiment_detail, name="experiment"),
    path("experiments/<int:pk>/<str:action>", dashboard.experiment_action, name="experiment_action"),
]
