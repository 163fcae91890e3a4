"""Usage metering on real Redis and PostgreSQL: counting on the ingestion paths, quotas per plan, and usage
reported to Stripe's meters exactly once, whatever the task does (runs twice, loses Stripe's answer).

Stripe is faked at the HTTP client edge (tests/stripe_fake.py); it counts a meter event identifier once,
as Stripe does, and every request it received is kept for the assertions.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from core.redis_client import raw_redis
from recs.ingest.import_jobs import new_upload_path
from recs.ingest.imports import ChunkLimits, run_import
from recs.models import Event, ImportJob
from tenants.billing import counters, quota, reporting, tasks, usage
from tenants.billing.models import UsageCounter, UsageReport
from tenants.billing.periods import bounds, next_period, period_of, previous_period
from tenants.billing.reporting import UsageReportFailed
from tenants.context import tenant_context
from tenants.models import Tenant
from tests import stripe_fake
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

CUSTOMER = "cus_FakeMetered"
EVENTS_METER = "recsvc_ingested_events"
RECS_METER = "recsvc_recommendation_requests"


@pytest.fixture
def fake_stripe(settings):
    with stripe_fake.installed(settings) as fake:
        yield fake


@pytest.fixture
def product(tenant):
    return ProductFactory(tenant=tenant, external_id="p1")


def _event(**overrides) -> dict:
    return {"type": "view", "customer_id": "c1", "product_id": "p1", "event_id": str(uuid.uuid4()), **overrides}


def _paid(tenant, plan: str = "growth") -> Tenant:
    Tenant.objects.filter(pk=tenant.pk).update(
        plan=plan, stripe_customer_id=CUSTOMER, stripe_subscription_id="sub_Metered", subscription_status="active"
    )
    return Tenant.objects.get(pk=tenant.pk)


def _stored(tenant) -> int:
    return Event.objects.for_tenant(tenant).count()


# --- Counting on the hot path ----------------------------------------------------------------------


def test_stored_events_are_counted_single_and_bulk_but_not_duplicates_or_rejects(api, tenant, product, settings):
    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices(free_events=1000)
    single = _event(event_id="one")
    assert api.post("/v1/events", single, format="json").status_code == 201
    assert api.post("/v1/events", single, format="json").status_code == 200  # a retry: stored nothing
    batch = [_event(), _event(), _event(event_id="one"), _event(product_id="unknown-product")]
    response = api.post("/v1/events/bulk", {"events": batch}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["stored"], response.json()["duplicates"], response.json()["rejected"]) == (2, 1, 1)
    usage.flush_pending()  # the API's counts wait for the process's next admission
    assert usage.live(tenant.pk, usage.EVENTS) == 3 == _stored(tenant)
    assert usage.live(tenant.pk, usage.RECOMMENDATIONS) == 0


def test_counters_are_per_shop_and_per_month(tenant, other_tenant):
    now = timezone.now()
    last_month = bounds(previous_period(period_of(now)))[0] + dt.timedelta(days=3)
    usage.record(tenant.pk, usage.EVENTS, 7)
    usage.record(tenant.pk, usage.EVENTS, 5, at=last_month)
    usage.record(other_tenant.pk, usage.EVENTS, 2)
    usage.record(tenant.pk, usage.EVENTS, 0)  # nothing stored: no-op
    assert usage.live(tenant.pk, usage.EVENTS) == 7
    assert usage.live(tenant.pk, usage.EVENTS, period_of(last_month)) == 5
    assert usage.live(other_tenant.pk, usage.EVENTS) == 2


def test_an_import_counts_the_events_it_stores_per_chunk(tenant, product, settings, tmp_path):
    settings.RECSVC_IMPORT_DIR = tmp_path
    rows = [_event(event_id=f"imp-{i}") for i in range(5)] + [_event(event_id="imp-0")]  # one duplicate
    with tenant_context(tenant.pk):
        path = new_upload_path(tenant.pk, "ndjson")
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        job = ImportJob.objects.create(tenant=tenant, kind="events", format="ndjson", file_path=str(path),
                                       size_bytes=path.stat().st_size)
        # Chunks of two rows: several chunks from a small file.
        assert run_import(job, limits=ChunkLimits(rows=2)).status == ImportJob.Status.SUCCEEDED
    assert usage.live(tenant.pk, usage.EVENTS) == 5 == _stored(tenant)


def test_without_redis_the_cache_api_counts(tenant, other_tenant):
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        usage.record(tenant.pk, usage.EVENTS, 4)
        usage.record(tenant.pk, usage.EVENTS, 3)
        usage.record(other_tenant.pk, usage.EVENTS, 1)
        assert usage.live(tenant.pk, usage.EVENTS) == 7
        period = period_of(timezone.now())
        assert counters.seed_and_read(tenant.pk, period, {"events": 0, "recommendations": 0})["events"] == 7
        cache.clear()


def test_redis_down_serves_the_request_and_counts_nothing(api, tenant, product, caplog):
    dead = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                        "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2,
                                    "SOCKET_TIMEOUT": 0.2}}}
    with override_settings(CACHES=dead, DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        usage.record(tenant.pk, usage.EVENTS, 3)
        assert usage.live(tenant.pk, usage.EVENTS) is None
        assert quota.check(Tenant.objects.get(pk=tenant.pk), usage.EVENTS).allowed
    assert "usage counter unavailable" in caplog.text


def test_a_lost_redis_hash_is_reseeded_from_the_last_snapshot(tenant):
    period = period_of(timezone.now())
    usage.record(tenant.pk, usage.EVENTS, 40)
    with tenant_context(tenant.pk):
        assert usage.snapshot(tenant.pk, period)["events"] == 40
    raw_redis().delete(counters.key(tenant.pk, period))  # Redis restarted without persistence
    usage.record(tenant.pk, usage.EVENTS, 2)
    with tenant_context(tenant.pk):
        assert usage.snapshot(tenant.pk, period)["events"] == 42
        assert usage.snapshot(tenant.pk, period)["events"] == 42  # seeded once, not at every snapshot
        assert UsageCounter.objects.for_tenant(tenant).get(meter="events", period=period).count == 42
    assert usage.live(tenant.pk, usage.EVENTS) == 42


# --- Quotas ----------------------------------------------------------------------------------------


def test_a_free_shop_past_its_quota_gets_a_429_problem_naming_the_limit(api, tenant, product, settings):
    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices(free_events=3)
    for _ in range(3):
        assert api.post("/v1/events", _event(), format="json").status_code == 201
    refused = api.post("/v1/events", _event(), format="json")
    assert refused.status_code == 429, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "/problems/quota-exceeded"
    assert (problem["meter"], problem["limit"], problem["used"], problem["plan"]) == ("events", 3, 3, "free")
    resets = bounds(period_of(timezone.now()))[1]
    assert problem["resets_at"] == resets.isoformat().replace("+00:00", "Z")
    assert "Free plan includes 3 ingested events a month" in problem["detail"]
    assert 0 < int(refused["Retry-After"]) <= 31 * 86_400 and problem["retry_after"] == int(refused["Retry-After"])
    # Bulk and file imports are refused too, and nothing more was stored; reading stays open.
    assert api.post("/v1/events/bulk", {"events": [_event()]}, format="json").status_code == 429
    upload = api.post("/v1/imports?kind=events", data=b"{}\n", content_type="application/x-ndjson")
    assert upload.status_code == 429
    assert _stored(tenant) == 3
    assert api.get("/v1/events").status_code == 200


def test_the_quota_is_per_shop(api, outsider_api, tenant, other_tenant, product, settings):
    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices(free_events=1)
    ProductFactory(tenant=other_tenant, external_id="p1")
    assert api.post("/v1/events", _event(), format="json").status_code == 201
    assert api.post("/v1/events", _event(), format="json").status_code == 429
    assert outsider_api.post("/v1/events", _event(), format="json").status_code == 201


def test_a_paid_shop_is_served_past_its_included_quota(api, tenant, product, fake_stripe):
    _paid(tenant)  # growth includes 100 events in the test plans
    for _ in range(3):
        batch = [_event() for _ in range(50)]
        assert api.post("/v1/events/bulk", {"events": batch}, format="json").status_code == 200
    usage.flush_pending()  # the API's counts wait for the process's next admission
    assert usage.live(tenant.pk, usage.EVENTS) == 150 == _stored(tenant)


def test_the_recommendations_meter_check_is_ready_for_the_endpoints(tenant, settings):
    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices(free_recommendations=2)
    fresh = Tenant.objects.get(pk=tenant.pk)
    usage.record(tenant.pk, usage.RECOMMENDATIONS, 2)
    decision = quota.check(fresh, usage.RECOMMENDATIONS)
    assert (decision.allowed, decision.status, decision.fields["limit"]) == (False, 429, 2)
    assert "recommendation requests" in decision.detail
    assert quota.check(fresh, usage.EVENTS).allowed


# --- Exactly-once reporting to Stripe --------------------------------------------------------------


def _meter_calls(fake) -> list[dict]:
    return fake.calls("/v1/billing/meter_events")


def test_the_report_task_sends_each_overage_unit_once_however_often_it_runs(tenant, other_tenant, fake_stripe):
    _paid(tenant)
    usage.record(tenant.pk, usage.EVENTS, 130)  # 100 included -> 30 overage
    usage.record(tenant.pk, usage.RECOMMENDATIONS, 60)  # within the 100 included
    usage.record(other_tenant.pk, usage.EVENTS, 500)  # a free shop: a hard limit, never billed
    assert tasks.report_usage.delay().get() == 2
    calls = _meter_calls(fake_stripe)
    assert len(calls) == 1
    period = period_of(timezone.now())
    sent = calls[0]["params"]
    assert sent["event_name"] == EVENTS_METER
    assert sent["payload"] == {"stripe_customer_id": CUSTOMER, "value": "30"}
    assert sent["identifier"] == f"recsvc:{tenant.pk}:events:{period:%Y%m}:1"
    assert calls[0]["headers"]["Idempotency-Key"] == sent["identifier"]
    start, end = bounds(period)
    assert start.timestamp() <= int(sent["timestamp"]) < end.timestamp()

    tasks.report_usage.delay()  # the beat fires again with nothing new: nothing is sent
    assert len(_meter_calls(fake_stripe)) == 1

    usage.record(tenant.pk, usage.EVENTS, 5)
    usage.record(tenant.pk, usage.RECOMMENDATIONS, 45)  # now 5 over its quota too
    tasks.report_usage.delay()
    tasks.report_usage.delay()
    assert len(_meter_calls(fake_stripe)) == 3
    assert fake_stripe.metered_total(CUSTOMER, EVENTS_METER) == 35
    assert fake_stripe.metered_total(CUSTOMER, RECS_METER) == 5
    with tenant_context(tenant.pk):
        reports = UsageReport.objects.for_tenant(tenant)
        assert {r.status for r in reports} == {"sent"}
        assert sorted((r.meter, r.seq, r.quantity) for r in reports) == [
            ("events", 1, 30), ("events", 2, 5), ("recommendations", 1, 5)
        ]


def test_a_lost_stripe_answer_is_resent_with_the_same_identifier_and_counted_once(tenant, fake_stripe):
    _paid(tenant)
    usage.record(tenant.pk, usage.EVENTS, 130)
    fake_stripe.lose_responses = 1  # Stripe takes the event, then the connection drops
    with pytest.raises(UsageReportFailed):
        tasks.report_tenant_usage(tenant.pk)  # as the worker runs it; Celery would retry
    assert fake_stripe.metered_total(CUSTOMER, EVENTS_METER) == 30  # Stripe has it already...
    with tenant_context(tenant.pk):
        row = UsageReport.objects.for_tenant(tenant).get()
        assert (row.status, row.attempts) == ("pending", 1)  # ...but we do not know it
        assert "response lost" in row.last_error

    usage.record(tenant.pk, usage.EVENTS, 10)  # more usage meanwhile: a new chunk, not a bigger old one
    assert tasks.report_tenant_usage(tenant.pk) == {"queued": 1, "sent": 2, "failed": 0}
    calls = _meter_calls(fake_stripe)
    assert [c["params"]["identifier"].rsplit(":", 1)[1] for c in calls] == ["1", "1", "2"]
    assert calls[0]["params"] == calls[1]["params"]  # the re-send is the same event
    assert fake_stripe.metered_total(CUSTOMER, EVENTS_METER) == 40  # 30 + 10, nothing twice
    tasks.report_tenant_usage(tenant.pk)
    assert len(_meter_calls(fake_stripe)) == 3


def test_stripe_down_keeps_reports_pending_until_it_is_back(tenant, fake_stripe):
    _paid(tenant)
    usage.record(tenant.pk, usage.EVENTS, 101)
    fake_stripe.down = True
    with pytest.raises(UsageReportFailed):
        reporting.report_tenant_usage(tenant.pk)
    with pytest.raises(UsageReportFailed):
        reporting.report_tenant_usage(tenant.pk)  # a retry while still down queues nothing new
    assert fake_stripe.meter_events == {}
    fake_stripe.down = False
    summary = reporting.report_tenant_usage(tenant.pk)
    assert (summary.queued, summary.sent) == (0, 1)
    assert fake_stripe.metered_total(CUSTOMER, EVENTS_METER) == 1


def test_usage_at_the_end_of_last_month_is_billed_inside_last_month(tenant, fake_stripe):
    _paid(tenant)
    now = timezone.now()
    last = previous_period(period_of(now))
    usage.record(tenant.pk, usage.EVENTS, 120, at=bounds(last)[1] - dt.timedelta(minutes=1))
    reporting.report_tenant_usage(tenant.pk, now=now)
    (call,) = _meter_calls(fake_stripe)
    assert call["params"]["identifier"] == f"recsvc:{tenant.pk}:events:{last:%Y%m}:1"
    assert int(call["params"]["timestamp"]) == int(bounds(last)[1].timestamp()) - 1
    assert call["params"]["payload"]["value"] == "20"


def test_a_report_stripe_refuses_is_marked_failed_not_retried_forever(tenant, fake_stripe, settings, caplog):
    _paid(tenant)
    settings.RECSVC_STRIPE_METER_EVENTS = {**settings.RECSVC_STRIPE_METER_EVENTS, "events": "no_such_meter"}
    usage.record(tenant.pk, usage.EVENTS, 150)
    summary = reporting.report_tenant_usage(tenant.pk)  # no exception: nothing is left to retry
    assert (summary.sent, summary.failed) == (0, 1)
    with tenant_context(tenant.pk):
        assert UsageReport.objects.for_tenant(tenant).get().status == "failed"
    assert "refused by Stripe" in caplog.text
    reporting.report_tenant_usage(tenant.pk)
    assert len(_meter_calls(fake_stripe)) == 1


def test_periods_roll_over_in_utc():
    assert period_of(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)) == dt.date(2026, 12, 1)
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert period_of(dt.datetime(2027, 1, 1, 0, 30, tzinfo=berlin)) == dt.date(2026, 12, 1)
    assert next_period(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert previous_period(dt.date(2027, 1, 1)) == dt.date(2026, 12, 1)


# --- Configuration fails fast ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [("price_1PouS8GFzsjrzPXD", True), ("prod_1PouS8GFzsjrzPXD", False), (" price_1Pou", False),
     ("price_", False), ("'price_1Pou'", False), ("price_1Pou\n", False)],
)
def test_stripe_price_ids_from_the_environment_are_checked(monkeypatch, value, ok):
    from config.env import ImproperlyConfiguredEnv, env_prefixed

    monkeypatch.setenv("STRIPE_PRICE_GROWTH", value)
    if ok:
        assert env_prefixed("STRIPE_PRICE_GROWTH", ("price_",)) == value
    else:
        with pytest.raises(ImproperlyConfiguredEnv, match="STRIPE_PRICE_GROWTH"):
            env_prefixed("STRIPE_PRICE_GROWTH", ("price_",))


def test_a_malformed_secret_is_refused_without_echoing_it(monkeypatch):
    from config.env import ImproperlyConfiguredEnv, env_prefixed

    monkeypatch.setenv("STRIPE_SECRET_KEY", "pk_live_ThisIsThePublishableKey")
    with pytest.raises(ImproperlyConfiguredEnv) as error:
        env_prefixed("STRIPE_SECRET_KEY", ("sk_test_", "sk_live_"), secret=True)
    assert "ThisIsThePublishableKey" not in str(error.value)


def test_a_stripe_key_without_the_webhook_secret_stops_the_process():
    import os
    import subprocess
    import sys

    env = {**os.environ, "STRIPE_SECRET_KEY": "sk_test_abc123", "STRIPE_WEBHOOK_SECRET": ""}
    done = subprocess.run([sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode != 0
    assert "set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together" in done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["growth"]["stripe_overage_prices"].update(events=None), "metered overage price"),
        (lambda p: p["scale"].update(stripe_price="price_growth_flat"), "also used by plan"),
        (lambda p: p["free"].update(stripe_price="price_free"), "free plan is a hard limit"),
        (lambda p: p["free"]["quotas"].pop("events"), "quotas"),
        (lambda p: p["growth"]["quotas"].update(events=-1), "quotas"),
        (lambda p: p.pop("scale"), "exactly the plans"),
    ],
)
def test_an_inconsistent_plan_table_is_refused(settings, change, message):
    from django.core.exceptions import ImproperlyConfigured

    from tenants.billing import plans

    table = stripe_fake.plans_with_prices()
    change(table)
    settings.RECSVC_BILLING_PLANS = table
    with pytest.raises(ImproperlyConfigured, match=message):
        plans.all_plans()


def test_plans_map_to_their_stripe_prices(settings):
    from tenants.billing import plans

    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices()
    assert plans.for_price("price_scale_flat").key == "scale"
    assert plans.for_price("price_scale_events") is None  # an overage price does not name a plan
    assert plans.get("retired-plan").key == "free"
    assert plans.get("growth").checkout_line_items() == [
        {"price": "price_growth_flat", "quantity": 1}, {"price": "price_growth_recs"}, {"price": "price_growth_events"}
    ]
    unpriced = stripe_fake.plans_with_prices()
    unpriced["growth"].update(stripe_price=None, stripe_overage_prices={"recommendations": None, "events": None})
    settings.RECSVC_BILLING_PLANS = unpriced
    assert not plans.get("growth").purchasable and plans.get("growth").is_paid
