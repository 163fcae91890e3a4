"""Training over the API (admin keys): start a run, follow it, list model versions, activate, roll back.

A run and the model version it produces are one row, so /v1/training/runs and /v1/models show the same
resource: the first is the operator's view of jobs, the second of what can serve.
"""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.problems import problem
from tenants.viewsets import TenantViewSet
from training.api_serializers import (
    ActivateSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    StartRunSerializer,
)
from training.registry import lifecycle
from training.registry.models import ModelVersion
from training.runs import RunInProgress, request_run

PROBLEM = OpenApiResponse(description="Problem details (application/problem+json)")


class VersionFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=ModelVersion.Status.choices, help_text="repeat to match several (status=ready&status=active)"
    )
    trigger = django_filters.CharFilter()

    class Meta:
        model = ModelVersion
        fields = ["status", "trigger"]


class _VersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Newest first (cursor pagination on the id); lists leave out the loss curve, the detail has it."""

    model = ModelVersion
    required_scope = "admin"
    filterset_class = VersionFilter
    serializer_class = ModelVersionSerializer

    def get_serializer_class(self):
        return ModelVersionDetailSerializer if self.action != "list" else ModelVersionSerializer

    def safely_get_queryset(self, queryset):
        if self.action == "list":
            queryset = queryset.defer("curve")
        return queryset


class TrainingRunViewSet(_VersionViewSet):
    @extend_schema(
        request=StartRunSerializer,
        responses={202: ModelVersionDetailSerializer, 400: PROBLEM, 409: PROBLEM},
        description="Queue a training run of the tenant's recommender. One run at a time per tenant: 409 names "
        "the run in progress.",
    )
    def create(self, request):
        serializer = StartRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():  # the worker gets the run once this commits
                version = request_run(
                    self.tenant_id, trigger="api", hyperparameters=serializer.validated_data["hyperparameters"]
                )
        except RunInProgress as exc:
            running = exc.version
            return problem(
                status.HTTP_409_CONFLICT, f"Cannot start a run: {exc}.", code="run_in_progress",
                run={"id": running.pk, "status": running.status} if running else None,
            )
        body = ModelVersionDetailSerializer(version, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/v1/models/{version.pk}"})


class ModelVersionViewSet(_VersionViewSet):
    def _refused(self, exc: lifecycle.ActivationRefused) -> Response:
        reason = str(exc)
        return problem(
            status.HTTP_409_CONFLICT, f"Not activated: {reason}.", code="activation_refused", reason=reason,
            force_allowed="regresses" in reason,
        )

    @extend_schema(
        request=ActivateSerializer,
        responses={200: ModelVersionDetailSerializer, 404: PROBLEM, 409: PROBLEM},
        description="Make this version the one that serves, atomically. Refused (409, with the reason) unless "
        "it is ready and does not regress the key metric beyond the tolerance against the active version; "
        "`force` overrides only a regression.",
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        version = self.get_object()  # 404 for another tenant's id before the body is even read
        serializer = ActivateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            version = lifecycle.activate(version, force=serializer.validated_data["force"])
        except lifecycle.ActivationRefused as exc:
            return self._refused(exc)
        return Response(ModelVersionDetailSerializer(version, context=self.get_serializer_context()).data)

    @extend_schema(
        request=None,
        responses={200: ModelVersionDetailSerializer, 404: PROBLEM, 409: PROBLEM},
        description="Serve this earlier ready version again (no regression guard: an operator's decision).",
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        version = self.get_object()
        try:
            version = lifecycle.rollback(self.tenant_id, version.pk)
        except lifecycle.ActivationRefused as exc:
            return self._refused(exc)
        return Response(ModelVersionDetailSerializer(version, context=self.get_serializer_context()).data)
