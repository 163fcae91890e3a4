"""Dashboard routes of privacy; config/urls.py mounts them into the dashboard's namespace."""

from django.urls import path

from privacy import dashboard

urlpatterns = [
    path("privacy", dashboard.privacy, name="privacy"),
    path("privacy/choice", dashboard.privacy_choice, name="privacy_choice"),
]
