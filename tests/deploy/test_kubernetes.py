"""deploy/k8s: each overlay renders with `kubectl kustomize` (Debian's kubectl, offline) and every object
validates strictly against the Kubernetes API's schemas (kubernetes-validate); then the shapes the service
needs: probes, autoscaling, a worker per Celery queue, one beat, migrations as the owner role, budgets,
requests, secrets referenced and never inlined, GPUs for training in the large overlay."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
# The API version validated against: the newest whose schemas the pinned kubernetes-validate ships.
KUBERNETES_VERSION = kubernetes_validate.latest_version()
SECRET_VARIABLES = {"DJANGO_SECRET_KEY", "RECSVC_FIELD_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL",
                    "RECSVC_ARTIFACT_SIGNING_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SENTRY_DSN"}

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (apt-get install kubectl)")


def render(overlay: str) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(K8S / "overlays" / overlay)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _pod_specs(objects: list[dict]):
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", ["small", "large"])
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(overlay):
    objects = render(overlay)
    assert len(objects) >= 15
    for o in objects:
        kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        assert o["metadata"].get("namespace") == "recsvc", o["metadata"]["name"]


def test_the_validation_catches_a_broken_manifest():
    web = _one(render("small"), "Deployment", "recsvc-web")
    web["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)
    web["spec"]["replicas"] = 2
    web["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # misspelt: strict refuses it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["small", "large"])
def test_the_service_shapes(overlay):
    objects = render(overlay)
    web = _one(objects, "Deployment", "recsvc-web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == ["gunicorn", "-c", "config/gunicorn.py"]
    hpa = _one(objects, "HorizontalPodAutoscaler", "recsvc-web")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "recsvc-web" and hpa["spec"]["minReplicas"] >= 2

    # A worker for every queue the settings route tasks to.
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE} | {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()}
    for queue in queues:
        worker = _one(objects, "Deployment", f"recsvc-worker-{queue}")
        command = worker["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[command.index("-Q") + 1] == queue

    beat = _one(objects, "Deployment", "recsvc-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"

    migrate = _one(objects, "Job", "recsvc-migrate")
    job_container = migrate["spec"]["template"]["spec"]["containers"][0]
    assert job_container["command"][-2:] == ["migrate", "--noinput"]
    (database_url,) = [e for e in job_container["env"] if e["name"] == "DATABASE_URL"]
    assert database_url["valueFrom"]["secretKeyRef"]["key"] == "OWNER_DATABASE_URL"

    budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert budgets["recsvc-web"]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "recsvc-web"}
    assert "recsvc-workers" in budgets

    # Secrets are referenced, never part of the manifests.
    assert not [o for o in objects if o["kind"] == "Secret"]
    for name, spec in _pod_specs(objects):
        for c in spec["containers"]:
            requests = c["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), name
            assert {"name": "recsvc-secrets"} in [ref.get("secretRef") for ref in c["envFrom"]], name
            for variable in c.get("env", []):
                assert not (variable["name"] in SECRET_VARIABLES and "value" in variable), (name, variable)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert not SECRET_VARIABLES & set(configmap["data"]), "a secret in the ConfigMap"


def test_training_runs_on_gpu_nodes_in_the_large_overlay_only():
    large = _one(render("large"), "Deployment", "recsvc-worker-training")["spec"]["template"]["spec"]
    container = large["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"].split("/")[-1].startswith("recsvc-cuda:")
    assert large["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in large["tolerations"]
    small = _one(render("small"), "Deployment", "recsvc-worker-training")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in small["containers"][0]["resources"].get("limits", {})
    assert "nodeSelector" not in small
