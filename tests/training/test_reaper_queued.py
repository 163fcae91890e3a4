"""Runs stuck in `queued` (their broker message was lost): re-sent once, then failed, and the tenant is free.

The broker is the real Redis of the test settings (CELERY_BROKER_URL): with eager mode off for one test, the
re-sent message is read back from the `training` queue's list."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from config.celery import app as celery_app
from tenants.context import tenant_context
from tests.factories import TenantFactory
from training.registry import reaper
from training.registry.models import ModelVersion
from training.runs import RunInProgress, claim_new_run, request_run
from training.tasks import train_model_version

pytestmark = pytest.mark.django_db
QUEUED_TIMEOUT = 600


@pytest.fixture(autouse=True)
def _timeouts(settings, tmp_path):
    settings.RECSVC_QUEUED_RUN_TIMEOUT_S = QUEUED_TIMEOUT
    settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S = 300
    settings.RECSVC_ARTIFACT_DIR = tmp_path


@pytest.fixture
def shop(all_tenants):
    return TenantFactory()


@pytest.fixture
def broker():
    if not django_settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker (set TEST_REDIS_URL)")
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.delete("training")
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False  # messages go to the broker, nobody consumes them
    yield client
    celery_app.conf.task_always_eager = previous
    client.delete("training")


def ago(seconds: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=seconds)


def queued(tenant, age_s: float) -> ModelVersion:
    v = ModelVersion.objects.create(tenant=tenant, status="queued")
    ModelVersion.objects.for_tenant(tenant).filter(pk=v.pk).update(created_at=ago(age_s))
    return v


def refreshed(v: ModelVersion) -> ModelVersion:
    return ModelVersion.objects.dangerously_all_tenants().get(pk=v.pk)


def sent_messages(broker) -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in the `training` queue."""
    out = []
    for raw in broker.lrange("training", 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append((envelope["headers"]["task"], args))
    return out


def test_a_lost_message_is_sent_again_once_then_the_run_fails_and_the_tenant_is_free(
    shop, other_tenant, broker, django_capture_on_commit_callbacks
):
    lost = queued(shop, QUEUED_TIMEOUT + 5)
    waiting = queued(other_tenant, QUEUED_TIMEOUT - 60)  # waiting for a worker is not being lost

    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.reap_lost_runs() == []
    assert sent_messages(broker) == [("training.tasks.train_model_version", [shop.pk, lost.pk])]
    lost = refreshed(lost)
    assert lost.status == "queued" and "sent again" in lost.status_reason
    assert refreshed(waiting).status == "queued" and refreshed(waiting).heartbeat_at is None

    # The next reaper passes within the timeout send nothing more (the re-send happens once).
    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.handle_stuck_queued_runs() == ([], [])
        assert reaper.reap_lost_runs() == []
    assert len(sent_messages(broker)) == 1
    with pytest.raises(RunInProgress):
        request_run(shop.pk, trigger="api")

    # A timeout after the re-send the run is still queued: failed, with the reason, and the tenant may train.
    ModelVersion.objects.for_tenant(shop).filter(pk=lost.pk).update(heartbeat_at=ago(QUEUED_TIMEOUT + 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.reap_lost_runs() == [lost.pk]
    lost = refreshed(lost)
    assert lost.status == "failed" and lost.finished_at is not None
    assert lost.status_reason.startswith("never started: still queued 600 s after its message was sent again")
    assert len(sent_messages(broker)) == 1  # failing sends nothing
    assert refreshed(waiting).status == "queued"
    assert request_run(shop.pk, trigger="api").status == "queued"


def test_the_resent_message_drives_the_normal_run(shop, django_capture_on_commit_callbacks):
    # Eager tasks: the re-sent message is delivered at once; the tenant has no events, so the run ends
    # failed for want of data, having been claimed and attempted exactly once.
    lost = queued(shop, QUEUED_TIMEOUT + 5)
    with django_capture_on_commit_callbacks(execute=True):
        resent, failed = reaper.handle_stuck_queued_runs()
    assert (resent, failed) == ([lost.pk], [])
    lost = refreshed(lost)
    assert lost.status == "failed" and lost.attempts == 1
    assert lost.status_reason.startswith("NotEnoughData")
    # A late duplicate of the lost message (it turned up after all) finds an ended run and does nothing.
    assert train_model_version.delay(shop.pk, lost.pk).get() == "skipped"
    assert refreshed(lost).attempts == 1


def test_a_run_a_worker_claimed_is_not_touched(shop, django_capture_on_commit_callbacks):
    old = queued(shop, 10 * QUEUED_TIMEOUT)
    assert reaper.claim(shop.pk, old.pk) is True  # the worker got there first
    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.handle_stuck_queued_runs() == ([], [])
    assert refreshed(old).status == "training"


def test_a_released_run_is_treated_like_a_fresh_queue_entry(shop, broker, django_capture_on_commit_callbacks):
    # A run given back to the queue before a Celery retry (release) has no re-send mark: if the retry's
    # message is lost too, the run gets one re-send and one more timeout before it is failed.
    run = queued(shop, 10 * QUEUED_TIMEOUT)
    reaper.claim(shop.pk, run.pk)
    reaper.release(shop.pk, run.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert reaper.handle_stuck_queued_runs() == ([run.pk], [])
    assert refreshed(run).status == "queued"
    assert sent_messages(broker) == [("training.tasks.train_model_version", [shop.pk, run.pk])]


def test_a_run_its_own_processes_train_is_claimed_at_once_and_sends_nothing(
    shop, broker, django_capture_on_commit_callbacks
):
    """The cluster's training Job (training.distributed.worker TENANT new): no message a Celery worker could
    take too, a claim the reaper respects while it beats and judges by its heartbeat when it stops."""
    with tenant_context(shop.pk), django_capture_on_commit_callbacks(execute=True):
        run = claim_new_run(shop.pk, hyperparameters={"ranker": {"epochs": 1}})
    assert run.status == ModelVersion.Status.TRAINING and run.heartbeat_at is not None and run.trigger == "cli"
    assert run.hyperparameters == {"ranker": {"epochs": 1}}
    assert sent_messages(broker) == []
    assert not reaper.claim(shop.pk, run.pk)  # a redelivered message of another run could not take it
    with tenant_context(shop.pk), pytest.raises(RunInProgress):
        claim_new_run(shop.pk)
    with tenant_context(shop.pk), pytest.raises(RunInProgress):
        request_run(shop.pk, trigger="api")
    assert reaper.reap_lost_runs() == [] and reaper.handle_stuck_queued_runs() == ([], [])
    ModelVersion.objects.for_tenant(shop).filter(pk=run.pk).update(heartbeat_at=ago(301))
    assert reaper.reap_lost_runs() == [run.pk]
    assert refreshed(run).status == ModelVersion.Status.FAILED
