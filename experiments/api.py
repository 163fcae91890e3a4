"""/v1/experiments (admin scope): create, list, read, start / pause / ramp / stop, and results.

The views map HTTP onto experiments.lifecycle (validation there, shared with the dashboard: a 400 names the
field; a change the experiment's state forbids is a 409) and experiments.results (read from the stored
snapshots, never from raw events).
"""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.problems import domain_call, problem
from core.schema import PROBLEM
from experiments import lifecycle
from experiments.catalog import GOAL_METRICS, GUARDRAIL_METRICS
from experiments.models import Experiment, Variant
from experiments.results import as_json, experiment_results
from tenants.viewsets import TenantViewSet


class VariantSerializer(serializers.ModelSerializer):
    config = serializers.JSONField(
        help_text='the serving configuration: {"ranker": true|false, "model_version": "active"} (the defaults); '
        "ranker false orders candidates by their retrieval score; bandit true reorders the answer's head by "
        "Thompson sampling, with bandit_reward (click, add_to_cart, purchase, revenue), bandit_head (2-20, "
        "default 5), bandit_explore_share (0-1, default 1) and bandit_half_life_hours (default 24)"
    )

    class Meta:
        model = Variant
        fields = ["name", "weight", "config"]


class GuardrailSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=GUARDRAIL_METRICS)
    margin = serializers.FloatField(help_text="the relative worsening allowed, in (0, 1]: 0.05 is 5%")


class ExperimentInputSerializer(serializers.ModelSerializer):
    """The request body of a create (validated by experiments.lifecycle, which names the field at fault)."""

    variants = VariantSerializer(many=True, help_text="2-5 variants; the first is the control")
    goal = serializers.ChoiceField(choices=GOAL_METRICS)
    secondary = serializers.ListField(child=serializers.ChoiceField(choices=GOAL_METRICS), required=False)
    guardrails = GuardrailSerializer(many=True, required=False)
    holdout_share = serializers.FloatField(
        required=False, help_text="share of the experiment's units kept on the default serving, in [0, 0.9]")
    traffic_share = serializers.FloatField(
        required=False, help_text="share of the shop's customers and sessions the experiment may enrol, (0, 1]; "
        "running experiments never share a unit")
    planned_units = serializers.IntegerField(
        required=False, help_text="units planned over all variants (tunes the always-valid test)")

    class Meta:
        model = Experiment
        fields = ["id", "name", "status", "goal", "secondary", "guardrails", "holdout_share", "traffic_share",
                  "planned_units", "variants", "created_at", "started_at", "stopped_at"]
        read_only_fields = ["id", "status", "created_at", "started_at", "stopped_at"]


class ExperimentSerializer(ExperimentInputSerializer):
    # Read through the tenant-scoped manager: a related manager would use the default one, which sees nothing.
    variants = serializers.SerializerMethodField()

    @extend_schema_field(VariantSerializer(many=True))
    def get_variants(self, experiment: Experiment) -> list[dict]:
        rows = Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment)
        return VariantSerializer(rows, many=True).data


RampSerializer = inline_serializer("ExperimentRamp", {
    "weights": serializers.DictField(child=serializers.FloatField(), help_text="variant name -> weight (> 0)"),
})

ResultsDoc = inline_serializer("ExperimentResults", {
    "as_of": serializers.DateField(allow_null=True, help_text="the day of the latest snapshot analysed"),
    "control": serializers.CharField(),
    "weights": serializers.DictField(child=serializers.FloatField()),
    "units": serializers.DictField(child=serializers.IntegerField()),
    "decision": serializers.ListField(child=serializers.CharField(), help_text="the SRM warning when it fires, "
                                      "then one sentence per treatment"),
    "srm": serializers.JSONField(allow_null=True, help_text="{p_value, mismatch}"),
    "metrics": serializers.JSONField(help_text="per treatment and metric: lift, low, high, p_value, p_adjusted, "
                                     "significant"),
    "guardrails": serializers.JSONField(help_text="per treatment and guardrail: lift, interval, status"),
    "goal_over_time": serializers.JSONField(help_text="per day and treatment: the goal's lift and interval"),
    "waiting_for_data": serializers.ListField(child=serializers.CharField()),
})


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """A shop's A/B experiments. Variants are serving configurations; a customer (or an anonymous session)
    is assigned by a hash of its id with the experiment's salt, and every answer it gets names its variant."""

    model = Experiment
    required_scope = "admin"
    serializer_class = ExperimentSerializer

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-pk")

    def _respond(self, experiment: Experiment, code: int = status.HTTP_200_OK) -> Response:
        experiment = self.safely_get_queryset(Experiment.objects.for_tenant(self.tenant_id)).get(pk=experiment.pk)
        return Response(ExperimentSerializer(experiment).data, status=code)

    @extend_schema(request=ExperimentInputSerializer, responses={201: ExperimentSerializer, 400: PROBLEM})
    def create(self, request):
        """A draft experiment; start it to enrol traffic."""
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        return self._respond(domain_call(lifecycle.create_experiment, self.tenant_id, request.data),
                             status.HTTP_201_CREATED)

    def _transition(self, change: Callable[[Experiment], Experiment]) -> Response:
        try:
            return self._respond(change(self.get_object()))
        except lifecycle.Conflict as exc:
            return problem(409, str(exc), code="conflict")

    @extend_schema(request=None, responses={200: ExperimentSerializer, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def start(self, request, pk: str):
        """Draft or paused -> running. A draft reserves its share of the shop's traffic (409 when the running
        and paused experiments leave too little)."""
        return self._transition(lifecycle.start)

    @extend_schema(request=None, responses={200: ExperimentSerializer, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk: str):
        """Running -> paused: its units get the default serving and keep their variants for the resume."""
        return self._transition(lifecycle.pause)

    @extend_schema(request=None, responses={200: ExperimentSerializer, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk: str):
        """Running or paused -> stopped, for good; its traffic share is freed."""
        return self._transition(lifecycle.stop)

    @extend_schema(request=RampSerializer, responses={200: ExperimentSerializer, 400: PROBLEM, 409: PROBLEM})
    @action(detail=True, methods=["post"])
    def ramp(self, request, pk: str):
        """New traffic weights, one per variant."""
        weights = request.data.get("weights") if isinstance(request.data, dict) else None
        return self._transition(lambda e: domain_call(lifecycle.ramp, e, weights))

    @extend_schema(responses={200: ResultsDoc})
    @action(detail=True, methods=["get"])
    def results(self, request, pk: str):
        """The analysis of the latest statistics snapshot (kept current by a periodic worker), the decision in
        words, and the goal's lift over time."""
        return Response(as_json(experiment_results(self.get_object())))
