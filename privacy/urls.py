"""Privacy API routes, mounted under /v1/ by config/urls.py."""

from django.urls import path

from privacy.api import PrivacyViewSet

urlpatterns = [
    path("privacy", PrivacyViewSet.as_view({"get": "show", "put": "change"}), name="privacy"),
]
