"""A training run of one tenant, start to finish: load, train, evaluate, save, validate, then the
serving index build (a `serving` queue task) activates it.

The Celery task, `manage.py train` and the tests all call `run_training`; hyper-parameters are
explicit and stored on the version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from training.data import temporal_split
from training.datasets import FEATURE_VERSION, TenantDataset, load_tenant_dataset
from training.registry import lifecycle, storage
from training.registry.models import ModelVersion

log = logging.getLogger(__name__)
MAX_CURVE_POINTS = 600
# Share of the overall progress bar each stage takes.
_STAGES = {"loading": (0, 5), "evaluation": (5, 50), "serving": (50, 95), "saving": (95, 100)}
# The evaluation stage trains three models one after another (retrieval, the ranker, retrieval refit on
# all training events: training/pipeline.py), then scores the held-out events: each step gets an equal
# part of the stage's share, so the bar keeps moving and names the step that runs.
_EVALUATION_STEPS = 4
SCORING_STEP = "scoring held-out events"


class NotEnoughData(Exception):
    pass


class ProgressRecorder:
    """Stores the trainers' progress callbacks on the version, at most every `every` seconds.

    A record names the run's stage as `phase` and, inside it, the step (a trainer's name, or what runs)
    as `stage`."""

    def __init__(self, version: ModelVersion, every: float = 1.0, echo=None):
        self.version, self.every, self.echo = version, every, echo
        self.stage = "loading"
        self._floor = 0.0
        self._last = 0.0
        self._steps, self._step, self._step_name, self._inner = 1, 0, None, 0.0

    def set_stage(self, stage: str, steps: int = 1) -> None:
        """A stage of the run begins; `steps` steps share its part of the bar."""
        self.stage = stage
        self._steps, self._step, self._step_name, self._inner = max(steps, 1), 0, None, 0.0
        self._floor = _STAGES.get(stage, (0, 100))[0]
        self.__call__({"percent": 0.0}, force=True)

    def step(self, name: str) -> None:
        """A step that reports no progress of its own begins: the bar moves to its part and names it."""
        self.__call__({"stage": name, "percent": 0.0}, force=True)

    def __call__(self, event: dict[str, Any], force: bool = False) -> None:
        lo, hi = _STAGES.get(self.stage, (0, 100))
        inner = min(max(float(event.get("percent", 0.0)), 0.0), 100.0)
        name = event.get("stage")
        if name is not None:
            # The trainers restart their own percent per model: another name, or a percent going back, is
            # the next step.
            if self._step_name is not None and (name != self._step_name or inner < self._inner):
                self._step = min(self._step + 1, self._steps - 1)
            self._step_name, self._inner = name, inner
        width = (hi - lo) / self._steps
        # The bar only moves forward within a phase.
        overall = max(lo + width * (self._step + inner / 100.0), self._floor)
        self._floor = overall
        record = {**{k: v for k, v in event.items() if isinstance(v, (int, float, str))},
                  "phase": self.stage, "percent": round(overall, 2)}
        if "loss" in event:
            self.version.curve.append({"phase": self.stage, **{k: record[k] for k in record if k != "percent"}})
            del self.version.curve[:-MAX_CURVE_POINTS]
        self.version.progress = record
        if self.echo:
            self.echo(record)
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            self.version.heartbeat_at = timezone.now()
            self.version.save(update_fields=["progress", "curve", "heartbeat_at"])


def _still_running(version: ModelVersion) -> bool:
    """False if someone else (the reaper) ended this run meanwhile; `version` is then refreshed."""
    current = ModelVersion.objects.for_tenant(version.tenant_id).filter(pk=version.pk).values_list("status", flat=True)
    if current.first() in (ModelVersion.Status.TRAINING, ModelVersion.Status.VALIDATING):
        return True
    version.refresh_from_db()
    return False


BASELINE_PREFIX = "popular_"


def evaluate_pipeline(pipeline, train, test, items, item_versions=None) -> dict[str, float]:
    """The protocol's metrics (docs/training.md) for the served pipeline (retrieval + ranker), seen items excluded,
    and the most-popular baseline's on the same split (prefixed `popular_`);
    with `item_versions` the ranker sees each candidate as it was at the query's time. Where this differs from
    what the funnel serves (exclusion, retrieval depth, query time, the shop's rules) is listed in
    docs/training.md, "Offline and served"; `tests/bench/quality.py --through-api` scores the served answers."""
    from training.baselines import popularity_scorer
    from training.evaluation import evaluate_scores, evaluate_topk, relevant_sets
    from training.pipeline import recommend

    customers, _ = relevant_sets(train, test)
    topk, _ = recommend(pipeline, train, items, customers, k=100, item_versions=item_versions)
    metrics = evaluate_topk(topk, customers, train, test)
    # The most-popular baseline on the same split: the dashboard shows it beside the model's figures.
    baseline = evaluate_scores(popularity_scorer(train), train, test)
    return {**metrics, **{f"{BASELINE_PREFIX}{name}": value for name, value in baseline.items()}}


def training_processes(tenant_id: int) -> int:
    """How many processes train this shop: `RECSVC_TRAINING_PROCESSES` for a shop named in
    `RECSVC_DISTRIBUTED_SHOPS` or holding at least `RECSVC_DISTRIBUTED_MIN_EVENTS` events (0: no threshold),
    else one (training/distributed/launch.py starts torchrun for more)."""
    from recs.models import Event
    from tenants.models import Tenant

    n = int(settings.RECSVC_TRAINING_PROCESSES)
    if n <= 1:
        return 1
    if Tenant.objects.filter(pk=tenant_id, slug__in=settings.RECSVC_DISTRIBUTED_SHOPS).exists():
        return n
    threshold = int(settings.RECSVC_DISTRIBUTED_MIN_EVENTS)
    if threshold > 0 and Event.objects.for_tenant(tenant_id).count() >= threshold:
        return n
    return 1


def enough_events(n_events: int) -> None:
    if n_events < settings.RECSVC_MIN_TRAINING_EVENTS:
        raise NotEnoughData(f"{n_events} usable events; at least {settings.RECSVC_MIN_TRAINING_EVENTS} are needed")


def train_served_models(
    dataset: TenantDataset, params: dict[str, Any], recorder: Any, evaluate: Callable[..., dict[str, float]]
) -> tuple[dict[str, float], Any]:
    """The run's models: the evaluated pipeline's metrics and the pipeline to serve (see `run_training`).
    Every process of a distributed run calls this with the same arguments (training/distributed/worker.py)."""
    from training.pipeline import DEFAULT_RANKER, DEFAULT_RETRIEVAL, TrainedPipeline, train_pipeline
    from training.trainers.ranker import train_ranker
    from training.trainers.two_tower import train_two_tower

    events = dataset.interactions
    kwargs = {
        "retrieval_params": params.get("retrieval"),
        "ranker_params": params.get("ranker"),
        "num_candidates": int(params.get("num_candidates", 200)),
        "seed": int(params.get("seed", 0)),
    }
    recorder.set_stage("evaluation", steps=_EVALUATION_STEPS)
    train, test = temporal_split(events)
    held_out = train_pipeline(train, dataset.items, item_versions=dataset.item_versions,
                              item_init=dataset.item_init, progress=recorder, **kwargs)
    recorder.step(SCORING_STEP)
    metrics = evaluate(held_out, train, test, dataset.items, dataset.item_versions)
    metrics.update({f"ranker_{k}": v for k, v in held_out.ranker.metrics.items() if isinstance(v, float)})
    # Serve what `train_pipeline(events)` would train, the recipe just evaluated one slice later: a ranker
    # on what customers did after `train` (stacked on the retrieval model fitted on `train`, which the
    # evaluated pipeline refit already holds), and retrieval refit on every event (recency matters
    # most). Serving the evaluated ranker instead gave it a fifth less data: on the nested MovieLens
    # validation split that scored NDCG@10 0.164 / Recall@100 0.427 against 0.171 / 0.428.
    recorder.set_stage("serving", steps=2)
    ranker = train_ranker(
        train, test, dataset.items, held_out.retrieval, item_versions=dataset.item_versions,
        num_candidates=held_out.num_candidates, **{**DEFAULT_RANKER, **(kwargs["ranker_params"] or {})},
        seed=kwargs["seed"], progress=recorder,
    )
    served = TrainedPipeline(
        retrieval=train_two_tower(
            events, dataset.items, **{**DEFAULT_RETRIEVAL, **(kwargs["retrieval_params"] or {})},
            item_init=dataset.item_init, seed=kwargs["seed"], progress=recorder,
        ),
        ranker=ranker,
        num_candidates=held_out.num_candidates,
        metrics=held_out.metrics,
    )
    return metrics, served


def run_training(
    version: ModelVersion, *, echo=None, auto_activate: bool = True,
    evaluate: Callable[..., dict[str, float]] = evaluate_pipeline,
    record: Callable[[Path], dict[str, Any]] | None = None, dataset: TenantDataset | None = None,
) -> ModelVersion:
    """Train `version` (idempotent: a retried run starts over and overwrites its own artifacts).

    `evaluate` scores the held-out pipeline (the arguments of `evaluate_pipeline`). `record`, given, writes
    more into the artifact folder before it is stored and returns metrics to add (a distributed run's plan);
    `dataset`, given, is the tenant's data already loaded (the one every process of a distributed run shares)."""
    # torch is a heavy import: keep it out of web processes that only queue runs.
    from training.artifacts import save_item_features, save_item_snapshot
    from training.cooccurrence import item_neighbours
    from training.features import item_snapshot

    params = version.hyperparameters or {}
    version.status = ModelVersion.Status.TRAINING
    version.started_at = timezone.now()
    version.attempts += 1
    version.curve, version.status_reason = [], ""
    version.save()
    recorder = ProgressRecorder(version, echo=echo)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        recorder.set_stage("loading")
        dataset = dataset if dataset is not None else load_tenant_dataset(version.tenant_id)
        events = dataset.interactions
        enough_events(len(events))
        version.n_events, version.n_customers, version.n_items = len(events), events.n_customers, events.n_items
        version.data_start, version.data_end = dataset.data_start, dataset.data_end
        version.feature_version = FEATURE_VERSION
        metrics, served = train_served_models(dataset, params, recorder, evaluate)
        recorder.set_stage("saving")
        folder = storage.version_dir(version.tenant_id, version.pk)
        served.save(folder)
        np.save(folder / "product_pks.npy", dataset.product_pks)
        np.save(folder / "customer_pks.npy", dataset.customer_pks)
        # Serving's ranker needs the catalog as trained (vocabulary ids), item features as of now and the
        # co-occurrence table of the events the served retrieval learned; the first snapshot ships with the
        # version, so it ranks from its first request (serving refreshes it, serving/online_features.py).
        save_item_features(folder, dataset.items)
        save_item_snapshot(folder, item_snapshot(events.item, events.ts, events.weight, events.n_items))
        item_neighbours(events, dataset.items.n_items).save(folder)
        if record is not None:
            metrics.update(record(folder))
        version.artifact_uri = storage.save(version.tenant_id, version.pk, folder)  # uploads when S3 is set
        # CPU seconds of this process (every torch thread): what a run costs, whatever else shares the cores.
        version.metrics = {**metrics, "train_seconds": round(time.perf_counter() - started, 2),
                           "train_cpu_seconds": round(time.process_time() - cpu_started, 2)}
        version.status = ModelVersion.Status.VALIDATING
        version.progress = {**version.progress, "percent": 100.0}
        if not _still_running(version):
            storage.discard(version.tenant_id, version.pk)
            return version
        version.save()
    except OperationalError:
        raise  # a transient database error: the task puts the run back in the queue and Celery retries
    except Exception as exc:
        if not _still_running(version):
            return version  # the reaper already failed this run (its worker looked dead): keep its verdict
        version.status = ModelVersion.Status.FAILED
        version.status_reason = f"{type(exc).__name__}: {exc}"
        version.finished_at = timezone.now()
        version.save()
        storage.discard(version.tenant_id, version.pk)
        if not isinstance(exc, NotEnoughData):
            log.exception("training of version %s failed", version.pk)
        return version
    version.status = ModelVersion.Status.READY
    version.finished_at = timezone.now()
    # Shown until the serving job has built the index (and activated the version, or said why not).
    version.status_reason = "index build queued" + (" (activation follows)" if auto_activate else "")
    version.save(update_fields=["status", "finished_at", "status_reason"])
    # The last step of validation is the serving index: a serving worker builds it into the version's
    # folder, records its parameters on the version and only then activates it (with auto_activate), so
    # a version is never active before it can answer without building an index in a request.
    try:
        lifecycle.send_task_by_name(lifecycle.BUILD_INDEX_TASK, version.tenant_id, version.pk, auto_activate)
    except Exception:  # the version is trained and stays ready; activating it later queues the build again
        log.exception("could not queue the index build of version %s", version.pk)
    version.refresh_from_db()  # with eager tasks the build (and activation) ran just now
    return version
