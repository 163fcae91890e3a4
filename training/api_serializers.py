"""Representations of training runs / model versions for the API (a run is the version it produces)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from training.hyperparameters import InvalidHyperparameters, allowed, clean_hyperparameters
from training.registry.models import ModelVersion

_PROGRESS_KEYS = ("phase", "stage", "epoch", "step", "loss")
_CURVE_KEYS = ("phase", "stage", "epoch", "step", "loss", "elapsed")


class ProgressSerializer(serializers.Serializer):
    percent = serializers.FloatField(help_text="0-100 over the whole run")
    phase = serializers.CharField(allow_null=True, help_text="loading, evaluation, serving or saving")
    stage = serializers.CharField(allow_null=True, help_text="the model being trained: retrieval or ranker")
    epoch = serializers.IntegerField(allow_null=True, help_text="0-based, per model")
    step = serializers.IntegerField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)


class CurvePointSerializer(serializers.Serializer):
    phase = serializers.CharField(allow_null=True)
    stage = serializers.CharField(allow_null=True)
    epoch = serializers.IntegerField(allow_null=True)
    step = serializers.IntegerField(allow_null=True)
    loss = serializers.FloatField()
    elapsed = serializers.FloatField(allow_null=True, help_text="seconds since this model's training began")


class TimingsSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    activated_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="last sign of life of the worker")
    queued_seconds = serializers.FloatField(allow_null=True)
    run_seconds = serializers.FloatField(allow_null=True, help_text="from start to end (or to now while running)")


def progress_of(version: ModelVersion) -> dict:
    recorded = version.progress if isinstance(version.progress, dict) else {}
    return {"percent": version.percent, **{key: recorded.get(key) for key in _PROGRESS_KEYS}}


def _seconds(start, end) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


class ModelVersionSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "kind", "status", "status_reason", "trigger", "hyperparameters", "metrics", "progress",
            "data_start", "data_end", "n_events", "n_customers", "n_items", "feature_version", "attempts",
            "timings",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, version: ModelVersion) -> dict:
        return progress_of(version)

    @extend_schema_field(TimingsSerializer)
    def get_timings(self, version: ModelVersion) -> dict:
        from django.utils import timezone

        running = version.status in (ModelVersion.Status.TRAINING, ModelVersion.Status.VALIDATING)
        end = version.finished_at or (timezone.now() if running else None)
        return {
            "created_at": version.created_at,
            "started_at": version.started_at,
            "finished_at": version.finished_at,
            "activated_at": version.activated_at,
            "heartbeat_at": version.heartbeat_at,
            "queued_seconds": _seconds(version.created_at, version.started_at),
            "run_seconds": _seconds(version.started_at, end),
        }


class ModelVersionDetailSerializer(ModelVersionSerializer):
    curve = serializers.SerializerMethodField()

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "curve"]
        read_only_fields = fields

    @extend_schema_field(CurvePointSerializer(many=True))
    def get_curve(self, version: ModelVersion) -> list[dict]:
        points = version.curve if isinstance(version.curve, list) else []
        return [{key: p.get(key) for key in _CURVE_KEYS} for p in points if isinstance(p, dict) and "loss" in p]


class StartRunSerializer(serializers.Serializer):
    hyperparameters = serializers.JSONField(
        required=False,
        help_text=f"Optional; every key optional, unknown keys are refused. Allowed: {allowed()}",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)

    def validate(self, attrs):
        try:
            attrs["hyperparameters"] = clean_hyperparameters(attrs.get("hyperparameters"))
        except InvalidHyperparameters as exc:
            # One field error per bad key, named by its full path: "hyperparameters.retrieval.dim".
            raise serializers.ValidationError(
                {".".join(filter(None, ["hyperparameters", path])): messages for path, messages in exc.errors.items()}
            ) from None
        return attrs


class ActivateSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        required=False, default=False,
        help_text="Activate although the key metric regresses beyond the tolerance (never skips validation).",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and set(data) - {"force"}:
            raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(set(data) - {"force"})})
        return super().to_internal_value(data)
