"""Attribution (recs/attribution/): served answers recorded through the Redis stream and stored by the
worker, feedback joined to them by recommendation_id, and the per-variant statistics the experiments
package reads, checked against a direct computation on the raw rows."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from core.redis_client import raw_redis
from experiments.metrics import CLICK_THROUGH, CONVERSION, REVENUE_PER_1000
from experiments.stats import VariantStats
from recs.attribution import record, store
from recs.attribution.stats import attributed_sums
from recs.attribution.stream import GROUP, ServedRecord, decode, stream_key
from recs.models import ServedAnswer
from recs.tasks import store_served_answers
from tests.conftest import _client_for

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the stream lives in Redis"),
]

N_PRODUCTS = 12
EPOCH = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # events' times: no test depends on today's date


def _shop(tenant) -> tuple:
    """Products p0..p11 and views, so that popular and similar answers hold items (no model needed)."""
    ingest, recommend = _client_for(tenant, ["ingest"]), _client_for(tenant, ["recommend"])
    products = [{"id": f"p{i}", "title": f"Product {i}", "price": "10.00"} for i in range(N_PRODUCTS)]
    assert ingest.post("/v1/products/bulk", {"items": products}, format="json").status_code == 200
    views = [{"type": "view", "customer_id": f"v{i % 5}", "product_id": f"p{i % N_PRODUCTS}",
              "timestamp": (EPOCH + dt.timedelta(minutes=i)).isoformat()} for i in range(40)]
    assert ingest.post("/v1/events/bulk", {"events": views}, format="json").status_code == 200
    return ingest, recommend


def _get(client, path: str, **params) -> dict:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


def _event(client, type_: str, product: str, recommendation_id: str | None, **extra) -> None:
    body = {"type": type_, "customer_id": "c1", "product_id": product, **extra}
    if recommendation_id is not None:
        body["recommendation_id"] = recommendation_id
    response = client.post("/v1/events", body, format="json")
    assert response.status_code == 201, response.content


def _rows(tenant) -> dict[str, ServedAnswer]:
    return {str(a.recommendation_id): a for a in ServedAnswer.objects.for_tenant(tenant)}


def test_every_served_answer_is_stored_by_the_worker_cached_or_not(tenant):
    _, recommend = _shop(tenant)
    served = [
        ("recommendations", "c1", "", _get(recommend, "/v1/recommendations", customer_id="c1", k=5)),
        ("recommendations", "c1", "", _get(recommend, "/v1/recommendations", customer_id="c1", k=5)),  # cached
        ("recommendations", "", "s-9", _get(recommend, "/v1/recommendations", session_id="s-9", k=3)),
        ("similar", "", "", _get(recommend, "/v1/products/p3/similar", k=4)),
        ("popular", "", "", _get(recommend, "/v1/popular", k=6)),
    ]
    assert served[0][3]["items"] == served[1][3]["items"]
    assert ServedAnswer.objects.for_tenant(tenant).count() == 0  # the hot path wrote no row
    assert raw_redis().xlen(stream_key()) == len(served)

    result = store_served_answers.apply().get()

    assert result == {"read": 5, "stored": 5, "malformed": 0, "failed": 0}
    rows = _rows(tenant)
    assert len(rows) == len(served)
    for endpoint, customer, session, answer in served:
        row = rows[answer["recommendation_id"]]
        assert (row.endpoint, row.customer_external_id, row.session_id) == (endpoint, customer, session)
        assert (row.variant, row.model_version, row.reason) == ("control", None, answer["reason"])
        assert row.items == [item["id"] for item in answer["items"]] and row.items
        assert row.propensities == [1.0] * len(row.items)
        assert abs((timezone.now() - row.served_at).total_seconds()) < 60
    assert raw_redis().xlen(stream_key()) == 0  # stored entries leave the stream
    assert store.drain().read == 0


def test_an_entry_stored_but_not_acknowledged_is_claimed_again_and_stored_once(tenant):
    _, recommend = _shop(tenant)
    answer = _get(recommend, "/v1/popular", k=3)
    client, key = raw_redis(), stream_key()
    store.drain()  # creates the group; stores the answer and acknowledges it
    answer = _get(recommend, "/v1/popular", k=3)
    # A worker reads and commits, then dies before XACK.
    [[_, [(entry_id, fields)]]] = client.xreadgroup(GROUP, "dead-worker", {key: ">"}, count=10)
    text = {k.decode(): v.decode() for k, v in fields.items()}
    store.store_answers([decode(entry_id.decode(), text)])

    assert store.drain(reclaim_idle_ms=60_000).read == 0  # not idle long enough: another run may hold it
    run = store.drain(reclaim_idle_ms=0)

    assert (run.read, run.stored) == (1, 0)
    assert len(_rows(tenant)) == 2 and answer["recommendation_id"] in _rows(tenant)
    assert client.xlen(key) == 0 and client.xpending(key, GROUP)["pending"] == 0


def test_an_unreadable_entry_is_dropped_and_the_rest_stored(tenant):
    _, recommend = _shop(tenant)
    answer = _get(recommend, "/v1/popular", k=3)
    raw_redis().xadd(stream_key(), {"r": "not-a-uuid", "t": tenant.pk})
    run = store.drain()
    assert (run.read, run.stored, run.malformed) == (2, 1, 1)
    assert list(_rows(tenant)) == [answer["recommendation_id"]]


def test_feedback_with_the_recommendation_id_joins_its_answer(tenant):
    ingest, recommend = _shop(tenant)
    answer = _get(recommend, "/v1/recommendations", customer_id="c1", k=5)
    rid, items = answer["recommendation_id"], [item["id"] for item in answer["items"]]
    shown = set(items)
    other = next(f"p{i}" for i in range(N_PRODUCTS) if f"p{i}" not in shown)
    for product in items:
        _event(ingest, "impression", product, rid)
    _event(ingest, "click", items[1], rid)
    _event(ingest, "click", items[1], rid)  # the same click again counts once
    _event(ingest, "add_to_cart", items[1], rid)
    _event(ingest, "purchase", items[1], rid, value=25.5)
    _event(ingest, "purchase", items[2], rid, price=4.0, quantity=3)  # no value: price x quantity
    _event(ingest, "click", other, rid)  # not in the answer: not attributed
    _event(ingest, "purchase", items[0], None, value=99.0)  # no recommendation id: not attributed
    _event(ingest, "purchase", items[0], str(uuid.uuid4()), value=99.0)  # an id never served
    store.drain()

    stats = attributed_sums(tenant.pk, timezone.now() - dt.timedelta(hours=1), timezone.now() + dt.timedelta(hours=1))

    sums = stats[("control", "recommendations")]
    assert sums.units == 1
    assert {m: sums.sums[m] for m in ("answers", "impressions", "clicks", "add_to_carts", "purchases",
                                      "conversions", "revenue")} == {
        "answers": 1, "impressions": len(items), "clicks": 1, "add_to_carts": 1, "purchases": 2,
        "conversions": 1, "revenue": 37.5,
    }


def test_a_recommendation_id_that_is_not_a_uuid_is_refused(tenant):
    ingest, _ = _shop(tenant)
    response = ingest.post("/v1/events", {"type": "click", "customer_id": "c1", "product_id": "p1",
                                          "recommendation_id": "guess-1"}, format="json")
    assert response.status_code == 400
    assert "recommendation_id" in response.json()["errors"]


def test_another_shops_events_with_a_guessed_recommendation_id_do_not_join(tenant, other_tenant):
    _, recommend = _shop(tenant)
    other_ingest, _ = _shop(other_tenant)  # the same product ids, so only the shop tells them apart
    answer = _get(recommend, "/v1/popular", k=5)
    rid, first = answer["recommendation_id"], answer["items"][0]["id"]
    for type_, extra in [("impression", {}), ("click", {}), ("purchase", {"value": 500.0})]:
        _event(other_ingest, type_, first, rid, **extra)
    store.drain()
    window = (timezone.now() - dt.timedelta(hours=1), timezone.now() + dt.timedelta(hours=1))

    mine = attributed_sums(tenant.pk, *window)[("control", "popular")]
    assert (mine.sums["impressions"], mine.sums["clicks"], mine.sums["revenue"]) == (0, 0, 0)
    assert attributed_sums(other_tenant.pk, *window) == {}  # shop B served nothing


def _direct(answers: list[ServedRecord], events: list[dict]) -> dict[tuple[str, str], dict[str, VariantStats]]:
    """The statistics from the raw rows, in Python: per unit, then VariantStats.from_rows."""
    by_id = {str(a.recommendation_id): a for a in answers}
    feedback: dict[str, dict] = defaultdict(lambda: {"impression": set(), "click": set(), "purchases": 0,
                                                     "revenue": 0.0})
    for e in events:
        a = by_id.get(e.get("recommendation_id", ""))
        if a is None or e["product_id"] not in a.items:
            continue
        f = feedback[e["recommendation_id"]]
        if e["type"] in ("impression", "click"):
            f[e["type"]].add(e["product_id"])
        elif e["type"] == "purchase":
            f["purchases"] += 1
            f["revenue"] += e["value"] if "value" in e else e["price"] * e.get("quantity", 1)
    units: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0] * 5))
    for a in answers:
        unit = f"c:{a.customer_id}" if a.customer_id else f"a:{a.recommendation_id}"
        f = feedback[str(a.recommendation_id)]
        row = units[(a.variant, a.endpoint)][unit]  # answers, impressions, clicks, converted, revenue
        row[0] += 1
        row[1] += len(f["impression"])
        row[2] += len(f["click"])
        row[3] = max(row[3], 1.0 if f["purchases"] else 0.0)
        row[4] += f["revenue"]
    out = {}
    for group, by_unit in units.items():
        answers_, impressions, clicks, converted, revenue = (list(col) for col in zip(*by_unit.values(), strict=True))
        out[group] = {
            CLICK_THROUGH.key: VariantStats.from_rows(clicks, impressions),
            CONVERSION.key: VariantStats.from_rows(converted),
            REVENUE_PER_1000.key: VariantStats.from_rows(revenue, answers_),
        }
    return out


def test_statistics_per_variant_and_endpoint_equal_a_direct_computation(tenant):
    ingest, _ = _shop(tenant)
    rng = random.Random(22)
    served_at = timezone.now() - dt.timedelta(minutes=30)
    answers = []
    for i in range(150):
        items = tuple(rng.sample([f"p{j}" for j in range(N_PRODUCTS)], 4))
        customer = f"u{rng.randrange(40)}" if rng.random() < 0.8 else ""  # else the answer is its own unit
        answers.append(ServedRecord(
            tenant_id=tenant.pk, recommendation_id=uuid.UUID(int=rng.getrandbits(128)),
            served_at=served_at + dt.timedelta(seconds=i), endpoint=rng.choice(["recommendations", "popular"]),
            variant=rng.choice(["control", "treatment"]), model_version=None, reason="popular",
            customer_id=customer, session_id="", items=items, propensities=(1.0,) * 4,
        ))
    # An answer served outside the window, with feedback: never counted.
    late = ServedRecord(**{**answers[0].__dict__, "recommendation_id": uuid.uuid4(),
                           "served_at": timezone.now() + dt.timedelta(days=2)})
    store.store_answers([*answers, late])
    events: list[dict] = []
    for a in [*answers, late]:
        rid = str(a.recommendation_id)
        for product in a.items:
            if rng.random() < 0.7:
                events.append({"type": "impression", "product_id": product, "recommendation_id": rid})
            if rng.random() < 0.2:
                events += [{"type": "click", "product_id": product, "recommendation_id": rid}] * rng.choice([1, 2])
            if rng.random() < 0.06:
                events.append({"type": "purchase", "product_id": product, "recommendation_id": rid,
                               "value": round(rng.uniform(1, 200), 2)})
            if rng.random() < 0.03:
                events.append({"type": "purchase", "product_id": product, "recommendation_id": rid,
                               "price": 12.5, "quantity": rng.randint(1, 3)})
        stray = next(f"p{j}" for j in range(N_PRODUCTS) if f"p{j}" not in a.items)
        if rng.random() < 0.3:
            events.append({"type": "purchase", "product_id": stray, "recommendation_id": rid, "value": 1000.0})
    for i, e in enumerate(events):
        e.update(customer_id="buyer", timestamp=(EPOCH + dt.timedelta(seconds=i)).isoformat())
    for start in range(0, len(events), 1000):
        response = ingest.post("/v1/events/bulk", {"events": events[start:start + 1000]}, format="json")
        assert response.status_code == 200 and response.json()["rejected"] == 0, response.content

    got = attributed_sums(tenant.pk, served_at, served_at + dt.timedelta(hours=1))
    want = _direct(answers, events)

    assert set(got) == set(want) == {(v, e) for v in ("control", "treatment") for e in ("recommendations", "popular")}
    for group, metrics in want.items():
        stats = got[group].metric_stats()
        for key, expected in metrics.items():
            for name, value in expected.as_dict().items():
                if name.endswith("_x") or name.endswith("_x2") or name.endswith("_xy"):
                    continue
                assert getattr(stats[key], name) == pytest.approx(value, rel=1e-9, abs=1e-9), (group, key, name)
    revenue = {v: sum(got[(v, e)].sums["revenue"] for e in ("recommendations", "popular"))
               for v in ("control", "treatment")}
    assert revenue == pytest.approx({v: sum(want[(v, e)][REVENUE_PER_1000.key].sum_y
                                            for e in ("recommendations", "popular")) for v in revenue})
    assert all(r > 0 for r in revenue.values())


def test_with_recording_off_nothing_is_recorded(tenant, settings):
    _, recommend = _shop(tenant)
    settings.RECSVC_RECORD_ANSWERS = False
    _get(recommend, "/v1/popular", k=3)
    assert raw_redis().exists(stream_key()) == 0


def test_with_redis_down_answers_are_served_unrecorded_and_counted(tenant):
    _, recommend = _shop(tenant)
    before = record.unrecorded()
    nowhere = {"default": {**django_settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=nowhere):
        answers = [_get(recommend, "/v1/popular", k=3) for _ in range(3)]
    assert all(a["items"] for a in answers)
    assert record.unrecorded() == before + 3
    # Redis is back (a new configuration): the next answer is recorded.
    answer = _get(recommend, "/v1/popular", k=3)
    store.drain()
    assert list(_rows(tenant)) == [answer["recommendation_id"]]


def test_without_redis_the_embedded_default_stores_each_answer_at_once(tenant):
    _, recommend = _shop(tenant)
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}):
        answer = _get(recommend, "/v1/popular", k=3)
    row = _rows(tenant)[answer["recommendation_id"]]
    assert row.items == [item["id"] for item in answer["items"]]


def test_conversion_carries_each_units_pre_period_conversion_as_its_cuped_covariate(tenant):
    ingest, _ = _shop(tenant)
    since = EPOCH + dt.timedelta(days=30)

    def answer(customer: str, served_at: dt.datetime) -> ServedRecord:
        return ServedRecord(
            tenant_id=tenant.pk, recommendation_id=uuid.uuid4(), served_at=served_at, endpoint="recommendations",
            variant="control", model_version=None, reason="popular", customer_id=customer, session_id="",
            items=("p1", "p2"), propensities=(1.0, 1.0))

    before, long_before = since - dt.timedelta(days=3), since - dt.timedelta(days=20)
    during = since + dt.timedelta(hours=1)
    answers = {
        "u1-pre": answer("u1", before),  # bought before the start: counted
        "u2-pre": answer("u2", before),  # bought only after the start: the experiment may have caused it
        "u3-old": answer("u3", long_before),  # outside the 14-day pre-period
        "u1": answer("u1", during), "u2": answer("u2", during), "u3": answer("u3", during), "u4": answer("u4", during),
    }
    store.store_answers(list(answers.values()))
    bought = {"u1-pre": before, "u2-pre": during, "u3-old": long_before, "u1": during, "u4": during}
    events = [{"type": "purchase", "customer_id": "buyer", "product_id": "p1", "value": 20.0,
               "recommendation_id": str(answers[name].recommendation_id),
               "timestamp": (at + dt.timedelta(minutes=5)).isoformat()} for name, at in bought.items()]
    response = ingest.post("/v1/events/bulk", {"events": events}, format="json")
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.content

    until = since + dt.timedelta(days=1)
    stats = attributed_sums(tenant.pk, since, until, pre_period=dt.timedelta(days=14))[
        ("control", "recommendations")].metric_stats()[CONVERSION.key]
    # Units u1..u4 in the window, converted 1, 0, 0, 1; before it only u1 converted (in time).
    assert (stats.n, stats.sum_y, stats.sum_x, stats.sum_x2, stats.sum_xy) == (4, 2, 1, 1, 1)
    plain = attributed_sums(tenant.pk, since, until)[("control", "recommendations")].metric_stats()[CONVERSION.key]
    assert (plain.n, plain.sum_y, plain.sum_x, plain.sum_x2, plain.sum_xy) == (4, 2, 0, 0, 0)
