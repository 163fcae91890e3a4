"""GET/PUT /v1/privacy (admin keys): the shop's choice to take part, its budget ledger, the releases' metadata,
and the plain-language explanation of what is shared."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.metadata import OneObjectMetadata
from privacy import explanation
from privacy.models import PrivacySettings
from privacy.optin import set_opted_in
from privacy.views_data import summary
from tenants.viewsets import TenantViewSet

PROBLEM = OpenApiResponse(description="Problem details (application/problem+json)")


class OptInSerializer(serializers.Serializer):
    opted_in = serializers.BooleanField(
        help_text="true: contribute to and read the cross-shop aggregates; false: stop contributing "
        "(what was released stays released)."
    )


class PrivacyViewSet(TenantViewSet):
    model = PrivacySettings
    required_scope = "admin"
    serializer_class = OptInSerializer  # what PUT takes (OPTIONS describes it)
    metadata_class = OneObjectMetadata

    def _answer(self) -> Response:
        return Response({**summary(self.tenant_id), "explanation": explanation.as_dict()})

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="privacy_retrieve",
                   description="The shop's participation, its privacy budget ledger per window (epsilon and delta "
                   "budget, spent, remaining, each release's charge or refusal) and what is shared.")
    def show(self, request) -> Response:
        return self._answer()

    @extend_schema(request=OptInSerializer, responses={200: OpenApiTypes.OBJECT, 400: PROBLEM},
                   operation_id="privacy_update",
                   description="Opt in or out. Opting out stops the shop's contributions from the next release "
                   "on; aggregates already released stay released.")
    def change(self, request) -> Response:
        serializer = OptInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        set_opted_in(self.tenant_id, serializer.validated_data["opted_in"], at=timezone.now())
        return self._answer()
