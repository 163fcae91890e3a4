"""Runs whose worker was lost: heartbeats, the reaper, and who may (re)take a run."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from tenants.context import dangerously_all_tenants, tenant_context
from tests.factories import TenantFactory
from training.registry import lifecycle, reaper, storage
from training.registry.models import ModelVersion
from training.tasks import reap_lost_runs, train_model_version

pytestmark = pytest.mark.django_db
TIMEOUT = 300


@pytest.fixture(autouse=True)
def _timeout(settings, tmp_path):
    settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S = TIMEOUT
    settings.RECSVC_ARTIFACT_DIR = tmp_path


@pytest.fixture
def shop(all_tenants):
    return TenantFactory()


def ago(seconds: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=seconds)


def version(tenant, **fields) -> ModelVersion:
    return ModelVersion.objects.create(tenant=tenant, **fields)


def status_of(v: ModelVersion) -> str:
    v.refresh_from_db()
    return v.status


def test_reaper_fails_only_runs_whose_heartbeat_went_stale(shop):
    active = version(shop, status="active", metrics={"ndcg@10": 0.2}, heartbeat_at=ago(10 * TIMEOUT))
    ready = version(shop, status="ready", heartbeat_at=ago(10 * TIMEOUT))
    lost = version(shop, status="training", started_at=ago(2 * TIMEOUT), heartbeat_at=ago(TIMEOUT + 5))
    storage.version_dir(shop.pk, lost.pk).mkdir(parents=True)
    (storage.version_dir(shop.pk, lost.pk) / "half-written.pt").write_bytes(b"x")

    reaped = reap_lost_runs.delay().get()

    assert reaped == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.status_reason.startswith("worker lost: no heartbeat since")
    assert lost.finished_at is not None
    assert not storage.version_dir(shop.pk, lost.pk).exists()
    assert (status_of(active), status_of(ready)) == ("active", "ready")
    assert lifecycle.active_version(shop.pk) == active


def test_live_and_queued_runs_are_left_alone(shop, other_tenant):
    alive = version(shop, status="training", started_at=ago(10 * TIMEOUT), heartbeat_at=ago(TIMEOUT - 30))
    queued = version(other_tenant, status="queued")
    ModelVersion.objects.for_tenant(other_tenant).update(created_at=ago(10 * TIMEOUT))  # waiting is not dying
    assert reaper.reap_lost_runs() == []
    assert (status_of(alive), status_of(queued)) == ("training", "queued")


def test_a_run_killed_before_its_first_beat_is_judged_by_its_start(shop):
    never_beat = version(shop, status="training", started_at=ago(TIMEOUT + 1))
    stuck_validating = version(other_shop := TenantFactory(), status="validating", heartbeat_at=ago(TIMEOUT + 1))
    assert sorted(reaper.reap_lost_runs()) == sorted([never_beat.pk, stuck_validating.pk])
    assert status_of(never_beat) == "failed"
    assert ModelVersion.objects.for_tenant(other_shop).get().status == "failed"


def test_reaper_spans_tenants_from_no_tenant_context(db):
    # The beat task runs with no tenant set: it must lift the database wall itself, and only for this.
    with dangerously_all_tenants():
        shops = [TenantFactory(), TenantFactory()]
        lost = [version(s, status="training", heartbeat_at=ago(TIMEOUT + 60)) for s in shops]
    assert sorted(reaper.reap_lost_runs()) == sorted(v.pk for v in lost)
    with dangerously_all_tenants():
        assert {status_of(v) for v in lost} == {"failed"}


def test_the_reaper_frees_the_tenant_for_a_new_run(shop):
    from training.runs import RunInProgress, request_run

    version(shop, status="training", heartbeat_at=ago(TIMEOUT + 60))
    with pytest.raises(RunInProgress):
        request_run(shop.pk, trigger="api")
    reaper.reap_lost_runs()
    assert request_run(shop.pk, trigger="api").status == "queued"


# --- claiming a run (what a delivered or redelivered task message may do) ------------------------------------


def test_a_queued_run_is_claimed_once(shop):
    queued = version(shop, status="queued")
    assert reaper.claim(shop.pk, queued.pk) is True
    queued.refresh_from_db()
    assert queued.status == "training" and queued.heartbeat_at is not None
    # A second delivery of the same message finds a live run and leaves it to its worker.
    assert reaper.claim(shop.pk, queued.pk) is False


def test_a_stale_run_can_be_taken_over_a_live_or_ended_one_cannot(shop):
    stale = version(shop, status="training", heartbeat_at=ago(TIMEOUT + 1))
    assert reaper.claim(shop.pk, stale.pk) is True
    stale.refresh_from_db()
    assert stale.heartbeat_at > ago(60)
    for status in ("ready", "active", "failed", "archived"):
        ended = version(TenantFactory(), status=status, heartbeat_at=ago(10 * TIMEOUT))
        assert reaper.claim(ended.tenant_id, ended.pk) is False, status
        assert status_of(ended) == status


def test_a_redelivered_message_for_a_reaped_run_does_nothing(shop):
    failed = version(shop, status="failed", status_reason="worker lost: no heartbeat since ...")
    with tenant_context(shop.pk):
        assert train_model_version.delay(shop.pk, failed.pk).get() == "skipped"
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.attempts == 0 and failed.status_reason.startswith("worker lost")


def test_a_message_for_another_tenants_version_does_nothing(shop, other_tenant):
    theirs = version(other_tenant, status="queued")
    assert train_model_version.delay(shop.pk, theirs.pk).get() == "skipped"
    assert status_of(theirs) == "queued"


def test_release_puts_a_claimed_run_back_in_the_queue(shop):
    queued = version(shop, status="queued")
    reaper.claim(shop.pk, queued.pk)
    reaper.release(shop.pk, queued.pk)
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.heartbeat_at is None
    assert reaper.claim(shop.pk, queued.pk) is True  # the retry can take it


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_while_the_block_runs(settings):
    settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S = 5  # a beat a second
    with dangerously_all_tenants():
        shop = TenantFactory()
        running = version(shop, status="training", heartbeat_at=ago(3600))
    with tenant_context(shop.pk):
        with reaper.heartbeat(shop.pk, running.pk):
            deadline = time.monotonic() + 30
            while ModelVersion.objects.for_tenant(shop).get().heartbeat_at < ago(60):
                assert time.monotonic() < deadline, "no heartbeat arrived"
                time.sleep(0.1)
        beat = ModelVersion.objects.for_tenant(shop).get().heartbeat_at
        time.sleep(1.5)
        # Stopped with the block: a lost worker's runs go stale.
        assert ModelVersion.objects.for_tenant(shop).get().heartbeat_at == beat
