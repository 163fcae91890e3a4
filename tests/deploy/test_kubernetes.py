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


def _artifact_mount(spec: dict) -> str | None:
    """Where a pod spec mounts the versions' volume (the claim recsvc-artifacts), None if it does not."""
    (container,) = spec["containers"]
    names = {v["name"] for v in spec["volumes"]
             if v.get("persistentVolumeClaim", {}).get("claimName") == "recsvc-artifacts"}
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in names]
    return mounts[0] if mounts else None


def test_the_large_overlay_serves_each_slice_from_its_own_shard_server():
    objects = render("large")
    shards = _one(objects, "StatefulSet", "recsvc-ann-shard")
    n = shards["spec"]["replicas"]
    assert n >= 2
    pod = shards["spec"]["template"]["spec"]
    labels = shards["spec"]["template"]["metadata"]["labels"]
    assert shards["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # A headless Service gives pod i its stable name recsvc-ann-shard-<i>.recsvc-ann-shard.
    service = _one(objects, "Service", shards["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]

    # Slice i of n at pod i: the ordinal passed explicitly, the count equal to the replicas.
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "serving.shard_server"]
    assert command[command.index("--of") + 1] == str(n)
    assert command[command.index("--port") + 1] == str(port["port"])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    env = {e["name"]: e for e in container["env"]}
    assert command[command.index("--shard") + 1] == "$(SHARD_INDEX)"
    assert env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    # Its one secret referenced, never inlined, and nothing else of recsvc-secrets (no database URL).
    assert env["RECSVC_ANN_SHARD_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "recsvc-secrets", "key": "RECSVC_ANN_SHARD_SECRET"}
    assert "envFrom" not in container
    assert not [o for o in objects if o["kind"] == "Secret"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] == port["targetPort"]
    assert {"name": port["targetPort"], "containerPort": port["port"]} in container["ports"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True

    # It reads the volume the web pods read, where the serving workers write the slices.
    root = command[command.index("--root") + 1]
    assert _artifact_mount(pod) == root
    assert next(m for m in container["volumeMounts"] if m["mountPath"] == root)["readOnly"] is True
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert configmap["data"]["RECSVC_ARTIFACT_DIR"] == root
    for name in ("recsvc-web", "recsvc-worker-serving", "recsvc-worker-training", "recsvc-worker-default"):
        spec = _one(objects, "Deployment", name)["spec"]["template"]["spec"]
        assert _artifact_mount(spec) == root, name
        sources = [r.get("configMapRef") for r in spec["containers"][0]["envFrom"]]
        assert {"name": configmap["metadata"]["name"]} in sources, name
    claim = _one(objects, "PersistentVolumeClaim", "recsvc-artifacts")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    # Web (and the workers that cut versions into slices) list every ordinal, in order.
    assert configmap["data"]["RECSVC_ANN_SHARD_SERVERS"].split(",") == [
        f"recsvc-ann-shard-{i}.{service['metadata']['name']}:{port['port']}" for i in range(n)]

    budget = _one(objects, "PodDisruptionBudget", "recsvc-ann-shard")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_the_small_overlay_has_no_shard_servers_and_no_multi_node_job():
    objects = render("small")
    assert not [o for o in objects if o["kind"] == "StatefulSet" or "ann-shard" in o["metadata"]["name"]]
    assert not [o for o in objects if o["metadata"]["name"] in ("recsvc-train", "recsvc-artifacts")]
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    assert "RECSVC_ANN_SHARD_SERVERS" not in configmap["data"]


def test_the_large_overlay_has_a_multi_node_training_job_for_torchrun():
    from training.distributed.worker import _arguments

    objects = render("large")
    job = _one(objects, "Job", "recsvc-train")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    nodes = spec["completions"]
    assert nodes == spec["parallelism"] >= 2 and spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    service = _one(objects, "Service", pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]

    (container,) = pod["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    flags = dict(a.split("=", 1) for a in command if a.startswith("--") and "=" in a)
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert flags["--nnodes"] == str(nodes) and flags["--nproc-per-node"] == str(gpus)
    assert flags["--max-restarts"] == "0" and flags["--rdzv-backend"] == "c10d"
    # Pod 0 of the Job, by its stable name under the headless Service.
    assert flags["--rdzv-endpoint"] == f"{job['metadata']['name']}-0.{service['metadata']['name']}:{port['port']}"
    assert command[-4:] == ["-m", "training.distributed.worker", "$(TRAIN_TENANT_ID)", "new"]
    (tenant,) = [e for e in container["env"] if e["name"] == "TRAIN_TENANT_ID"]
    assert tenant["valueFrom"]["configMapKeyRef"] == {"name": "recsvc-train-run", "key": "TRAIN_TENANT_ID"}
    parsed = _arguments(["42", "new"])  # the worker takes what the Job passes
    assert (parsed.tenant_id, parsed.version) == (42, "new")

    assert container["image"].split("/")[-1].startswith("recsvc-cuda:")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert _artifact_mount(pod) == next(o for o in objects if o["kind"] == "ConfigMap")["data"]["RECSVC_ARTIFACT_DIR"]
    # A release applies everything but the run (`-l app.kubernetes.io/name!=recsvc-train`): that label marks
    # the Job and its Service only.
    marked = {(o["kind"], o["metadata"]["name"]) for o in objects
              if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "recsvc-train"}
    assert marked == {("Job", "recsvc-train"), ("Service", "recsvc-train")}
