"""OPTIONS for API resources that are one object per shop, with no id in their path."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework.exceptions import APIException
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import clone_request


class OneObjectMetadata(SimpleMetadata):
    """DRF's metadata checks PUT's object permission through get_object(), which needs an id in the path
    (an AssertionError, so a 500); here the view-level permission decides, which for such a resource is all
    there is."""

    def determine_actions(self, request, view) -> dict:
        actions = {}
        for method in {"PUT", "POST"} & set(view.allowed_methods):
            view.request = clone_request(request, method)
            try:
                view.check_permissions(view.request)
                actions[method] = self.get_serializer_info(view.get_serializer())
            except (APIException, PermissionDenied, Http404):
                pass
            finally:
                view.request = request
        return actions
