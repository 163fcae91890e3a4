"""The funnel on a tiny trained tenant: real PostgreSQL rows, a real model, a real FAISS index."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pytest
from django.utils import timezone

from recs.ingest.event_types import set_event_type
from recs.ingest.events import ingest_events
from recs.models import Boost, Customer, Event, Product, Promotion, RecommendationSettings
from recs.rules import create_rule, update_settings
from serving import funnel, online_features, ranking, registry_cache
from serving import rules as compiled_rules
from serving.cache import bump_rules_generation
from serving.funnel import Context, Reason, consumed_products, recommend, similar_items
from tests.factories import EventFactory, ProductFactory, TenantFactory, change_products
from tests.serving.trained import train_active_version
from training.registry import lifecycle

pytestmark = pytest.mark.django_db


def _buyer(tenant) -> Customer:
    """A customer with purchases (so the already-bought filter has something to do)."""
    pk = Event.objects.for_tenant(tenant).filter(event_type="purchase").values_list("customer_id", flat=True)[0]
    return Customer.objects.for_tenant(tenant).get(pk=pk)


def _pks(rec) -> list[int]:
    return [item.product_pk for item in rec.items]


def test_k_distinct_sellable_products_never_bought_before(shop):
    tenant, version = shop
    customer = _buyer(tenant)
    bought = set(consumed_products(tenant.pk, customer.pk).tolist())
    assert bought

    rec = recommend(tenant.pk, customer.pk, k=10)

    assert (rec.reason, rec.model_version) == (Reason.PERSONALIZED, version.pk)
    pks = _pks(rec)
    assert len(pks) == len(set(pks)) == 10
    assert not set(pks) & bought
    products = Product.objects.for_tenant(tenant).filter(pk__in=pks)
    assert all(p.in_stock for p in products) and products.count() == 10
    scores = [item.score for item in rec.items]
    assert scores == sorted(scores, reverse=True)


def test_stock_changes_apply_to_the_next_request(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    first = _pks(recommend(tenant.pk, customer.pk, k=5))
    change_products(tenant, {first[0]: {"stock": 0}, first[1]: {"available": False}, first[2]: {"deleted": True}})

    second = _pks(recommend(tenant.pk, customer.pk, k=5))

    assert len(second) == 5
    assert not set(second) & set(first[:3])
    assert second[:2] == first[3:5]  # the rest keep their order


def test_an_event_posted_now_changes_the_next_answer(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    before = recommend(tenant.pk, customer.pk, k=10)
    # Ten views of products far from what the model recommends to this customer.
    far = recommend(tenant.pk, customer.pk, k=300).items[-10:]
    rows = [{"type": "view", "customer_id": customer.external_id, "product_id": item.external_id} for item in far]
    assert ingest_events(tenant.pk, rows).stored == 10

    after = recommend(tenant.pk, customer.pk, k=10)

    assert _pks(after) != _pks(before)
    # And a purchase removes the bought item at once.
    top = after.items[0]
    ingest_events(tenant.pk, [{"type": "purchase", "customer_id": customer.external_id, "product_id": top.external_id}])
    assert top.product_pk not in _pks(recommend(tenant.pk, customer.pk, k=10))


def test_session_events_personalise_an_anonymous_visitor(shop):
    tenant, version = shop
    session = Event.objects.for_tenant(tenant).exclude(session_id="").values_list("session_id", flat=True)[0]

    rec = recommend(tenant.pk, None, session_id=session, k=5)

    assert (rec.reason, rec.model_version, len(rec.items)) == (Reason.PERSONALIZED, version.pk, 5)


def test_unknown_customers_without_events_get_popular_items(shop):
    tenant, version = shop
    rec = recommend(tenant.pk, None, k=5)
    assert (rec.reason, rec.model_version) == (Reason.UNKNOWN_CUSTOMER, version.pk)
    assert _pks(rec) == [item.product_pk for item in funnel.popular(tenant.pk, 5).items]


def test_similar_products_exclude_the_product_and_unsellable_ones(shop):
    tenant, version = shop
    product = Product.objects.for_tenant(tenant).order_by("pk")[5]
    rec = similar_items(tenant.pk, product.pk, k=8)
    assert (rec.reason, rec.model_version) == (Reason.SIMILAR, version.pk)
    pks = _pks(rec)
    assert len(set(pks)) == 8 and product.pk not in pks
    change_products(tenant, {pks[0]: {"stock": 0}})

    again = _pks(similar_items(tenant.pk, product.pk, k=8))

    assert pks[0] not in again and again[:7] == pks[1:]


def test_activating_a_new_version_swaps_the_served_model(shop, django_capture_on_commit_callbacks):
    tenant, first = shop
    customer = _buyer(tenant)
    assert recommend(tenant.pk, customer.pk, k=3).model_version == first.pk
    with django_capture_on_commit_callbacks(execute=True):  # the test's transaction never commits
        second = train_active_version(tenant)  # trained and activated
    assert recommend(tenant.pk, customer.pk, k=3).model_version == second.pk

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.rollback(tenant.pk, first.pk)
    assert recommend(tenant.pk, customer.pk, k=3).model_version == first.pk


def test_without_an_active_model_popular_sellable_items_are_served(all_tenants):
    tenant = TenantFactory()
    hot, warm, sold_out = (ProductFactory(tenant=tenant) for _ in range(3))
    Product.objects.for_tenant(tenant).filter(pk=sold_out.pk).update(stock=0)
    now = timezone.now()
    for product, n in ((hot, 3), (warm, 2), (sold_out, 5)):
        for _ in range(n):
            EventFactory(tenant=tenant, product=product, ts=now)
    for _ in range(2):  # exposures, not preferences
        EventFactory(tenant=tenant, product=warm, event_type="impression", ts=now)
    EventFactory(tenant=tenant, product=warm, ts=now - dt.timedelta(days=31))  # outside the 30-day window

    rec = recommend(tenant.pk, None, k=2)

    assert (rec.reason, rec.model_version) == (Reason.NO_ACTIVE_MODEL, None)
    assert _pks(rec) == [hot.pk, warm.pk]
    assert [round(i.score, 3) for i in rec.items] == [1.0, 0.667]
    # Asked for more than the window holds, the window widens: the older view counts too.
    wider = recommend(tenant.pk, None, k=5)
    assert _pks(wider) == [hot.pk, warm.pk] and [i.score for i in wider.items] == [1.0, 1.0]
    assert wider.explain["popular"]["window_days"] == 120


def test_serving_never_imports_the_trainers():
    # A fresh interpreter: this test process has imported the trainers to train the fixtures.
    code = (
        "import sys, django; django.setup();"
        "import serving.funnel, serving.registry_cache, recs.api.recommend_views, config.urls;"
        "bad = sorted(m for m in sys.modules if m.startswith('training.trainers') or m == 'training.pipeline');"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


# --- filtering, scoring and ordering (rules, context, explain) -----------------------------------------


def _rules_changed(tenant) -> None:
    """Rule writes bump the generation on commit, which a test transaction never reaches."""
    bump_rules_generation(tenant.pk)


def _product(tenant, pk) -> Product:
    return Product.objects.for_tenant(tenant).get(pk=pk)


def _step(rec, name) -> dict:
    return next(s for s in rec.explain["retrieval"]["filters"] if s["name"] == name)


def test_a_category_rule_removes_candidates_and_explain_counts_them(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    before = recommend(tenant.pk, customer.pk, k=10)
    top_category = _product(tenant, before.items[0].product_pk).category_path[0]
    rule = create_rule(tenant, {"name": "no top", "kind": "exclude_categories",
                                "params": {"categories": [top_category]}})
    _rules_changed(tenant)

    after = recommend(tenant.pk, customer.pk, k=10)

    assert len(after.items) == 10
    assert all(top_category not in _product(tenant, pk).category_path for pk in _pks(after))
    step = _step(after, "no top")
    assert step["id"] == rule.pk and step["kind"] == "exclude_categories" and step["removed"] > 0
    assert _step(after, "consumed")["removed"] >= 0 and after.explain["retrieval"]["depth"] >= 50
    assert after.explain["rules_generation"] > 0


def test_when_rules_leave_too_few_retrieval_goes_deeper_then_popular_items_passing_them_fill(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    model = registry_cache.served_model(tenant.pk)
    paths = [tuple(p) for p in Product.objects.for_tenant(tenant).values_list("category_path", flat=True)]
    leaf = list(min((p for p in set(paths) if paths.count(p) >= 2), key=lambda p: (paths.count(p), p)))
    in_leaf = Product.objects.for_tenant(tenant).filter(category_path=leaf)
    assert in_leaf.count() < 10
    # A product newer than the model (no embedding): only the popular fallback can bring it.
    fresh = ProductFactory(tenant=tenant, category_path=leaf, stock=5)
    EventFactory(tenant=tenant, product=fresh, ts=Event.objects.for_tenant(tenant).latest("ts").ts)
    create_rule(tenant, {"name": "leaf only", "kind": "include_categories", "params": {"categories": [leaf[-1]]}})
    _rules_changed(tenant)

    rec = recommend(tenant.pk, customer.pk, k=10)

    assert rec.explain["retrieval"]["depth"] == model.n_items  # as deep as the catalog goes
    assert rec.explain["retrieval"]["rounds"] > 1
    assert all(item.source == "model" for item in rec.items[:-1]) and rec.items[-1].source == "popular"
    assert rec.items[-1].product_pk == fresh.pk and rec.items[-1].retrieval_score is None
    assert rec.items[-1].ranker_score is None and 0 < rec.items[-1].popularity <= 1
    assert set(_pks(rec)) <= {*in_leaf.values_list("pk", flat=True), fresh.pk}
    assert rec.explain["popular"]["used"] == 1


def test_the_ranker_scores_all_filtered_candidates_in_one_call_and_orders_the_answer(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    calls = []

    def reversed_ranker(tenant_id, model, customer_pk, history_items, history_weights, items, retrieval_scores,
                        activity=None, cut=None):
        calls.append((customer_pk, len(history_items), len(items)))
        # The history the customer was embedded with is the one the ranker would cut for itself.
        own = ranking.customer_history(model, history_items, history_weights)
        assert np.array_equal(cut.items.values, own.items.values) and np.array_equal(cut.weights, own.weights)
        # The customer's activity comes read with their other events, and means what the ranker's own read means.
        assert online_features.activity_totals(tenant_id, activity) == online_features.customer_activity(
            tenant_id, customer_pk)
        # the worst retrieved scores best
        return ranking.Scores(np.linspace(0.1, 0.9, len(items), dtype=np.float32), ranking.ScoreSource.RANKER)

    rec = recommend(tenant.pk, customer.pk, k=5, ranker=reversed_ranker)

    assert len(calls) == 1 and calls[0][0] == customer.pk and calls[0][1] > 0
    assert calls[0][2] == rec.explain["retrieval"]["scored"] == rec.explain["retrieval"]["after_filters"]
    retrieval = [item.retrieval_score for item in rec.items]
    assert retrieval == sorted(retrieval)  # ascending: the ranker's order, not retrieval's
    assert [item.score for item in rec.items] == [item.ranker_score for item in rec.items]
    assert rec.items[0].ranker_score == pytest.approx(0.9)


def test_a_failing_ranker_falls_back_to_retrieval_order(shop):
    tenant, _ = shop

    def broken(*args, **kwargs):
        raise RuntimeError("no features")

    rec = recommend(tenant.pk, _buyer(tenant).pk, k=5, ranker=broken)
    assert len(rec.items) == 5 and rec.explain["scoring"] == "retrieval:ranker_failed"
    assert all(i.ranker_score is None for i in rec.items)
    assert [i.score for i in rec.items] == [i.retrieval_score for i in rec.items]


def test_promotions_lift_at_their_threshold_and_boosts_scale(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    deep = recommend(tenant.pk, customer.pk, k=40).items
    pushed, too_high, buried = deep[30], deep[31], deep[0]
    promo = Promotion.objects.create(tenant=tenant, name="push", product_ids=[pushed.external_id], threshold=0.0)
    Promotion.objects.create(tenant=tenant, name="unreachable", product_ids=[too_high.external_id], threshold=1.0)
    Promotion.objects.create(tenant=tenant, name="ended", product_ids=[deep[32].external_id],
                             ends_at=timezone.now() - dt.timedelta(hours=1))
    boost = Boost.objects.create(tenant=tenant, name="bury", factor=0.001,
                                 conditions=[{"field": "title", "op": "eq", "value": buried.title}])
    _rules_changed(tenant)

    rec = recommend(tenant.pk, customer.pk, k=10)

    first = rec.items[0]
    assert (first.product_pk, first.score) == (pushed.product_pk, 1.0)
    assert first.promotions == ({"id": promo.pk, "name": "push", "threshold": 0.0, "applied": True},)
    assert first.ranker_score < 1.0
    assert too_high.product_pk not in _pks(rec) and deep[32].product_pk not in _pks(rec)
    assert buried.product_pk not in _pks(rec)
    again = recommend(tenant.pk, customer.pk, k=300)
    sunk = next(i for i in again.items if i.product_pk == buried.product_pk)
    assert sunk.boosts == ({"id": boost.pk, "name": "bury", "factor": 0.001},)
    assert sunk.score == pytest.approx(sunk.ranker_score * 0.001)


def test_the_diversity_cap_holds_the_most_specific_category(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    RecommendationSettings.objects.create(tenant=tenant, max_per_category=1)
    _rules_changed(tenant)

    rec = recommend(tenant.pk, customer.pk, k=10)

    leaves = [_product(tenant, pk).category_path[-1] for pk in _pks(rec)]
    assert len(leaves) == 10 and len(set(leaves)) == 10
    assert rec.explain["diversity"]["max_per_category"] == 1


def test_request_context_excludes_the_current_product_and_filters_category_and_price(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    plain = recommend(tenant.pk, customer.pk, k=10)
    current = plain.items[0].product_pk
    category = _product(tenant, plain.items[1].product_pk).category_path[0]

    rec = recommend(tenant.pk, customer.pk, k=10, context=Context(
        page_type="product", product_pk=current, category=category, price_min=5, price_max=500,
    ))

    assert current not in _pks(rec) and len(rec.items) > 0
    for pk in _pks(rec):
        product = _product(tenant, pk)
        assert category in product.category_path and 5 <= float(product.price) <= 500
    assert rec.explain["context"]["page_type"] == "product"


def test_consumed_products_within_the_configured_days(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    ever = consumed_products(tenant.pk, customer.pk, None)
    assert len(ever) > 0
    assert len(consumed_products(tenant.pk, customer.pk, 0)) == 0  # 0: never excluded
    # The synthetic shop's events are in the past: none within the last day ...
    assert len(consumed_products(tenant.pk, customer.pk, 1)) == 0
    # ... until a fresh purchase.
    EventFactory(tenant=tenant, customer=customer, product_id=int(ever[0]), event_type="purchase", ts=timezone.now())
    assert consumed_products(tenant.pk, customer.pk, 1).tolist() == [int(ever[0])]

    RecommendationSettings.objects.create(tenant=tenant, exclude_consumed_days=0)
    _rules_changed(tenant)
    rec = recommend(tenant.pk, customer.pk, k=10)
    assert "consumed" not in [s["name"] for s in rec.explain["retrieval"]["filters"]]


def test_rated_products_and_a_shop_marked_type_never_come_back(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    first = _pks(recommend(tenant.pk, customer.pk, k=10))
    now = timezone.now()
    for pk in first[:3]:  # rating is consumption by default
        EventFactory(tenant=tenant, customer=customer, product_id=pk, event_type="rating", value=4.0, ts=now)
    set_event_type(tenant.pk, "subscribe", 2.0)
    EventFactory(tenant=tenant, customer=customer, product_id=first[3], event_type="subscribe", ts=now)
    EventFactory(tenant=tenant, customer=customer, product_id=first[4], event_type="view", ts=now)

    kept = set(_pks(recommend(tenant.pk, customer.pk, k=10)))
    assert not kept & set(first[:3]) and len(kept) == 10
    assert first[3] not in consumed_products(tenant.pk, customer.pk).tolist()  # not consumption until marked

    update_settings(tenant, {"consumed_event_types": ["purchase", "rating", "subscribe"]})
    _rules_changed(tenant)
    rec = recommend(tenant.pk, customer.pk, k=10)
    assert not set(_pks(rec)) & set(first[:4]) and len(rec.items) == 10  # retrieval went deeper for them
    assert _step(rec, "consumed")["removed"] >= 4
    marked = ("purchase", "rating", "subscribe")
    assert first[4] not in consumed_products(tenant.pk, customer.pk, event_types=marked).tolist()  # a view is not


def test_the_requests_reranker_reorders_the_answer(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    plain = recommend(tenant.pk, customer.pk, k=5)

    class Reverse:
        name = "reverse"

        def rerank(self, tenant_id, items, context):
            assert context["endpoint"] == "recommendations"
            return list(reversed(range(len(items))))

    rec = recommend(tenant.pk, customer.pk, k=5, reranker=Reverse())
    assert _pks(rec) == list(reversed(_pks(plain))) and rec.explain["reranker"] == "reverse"


def test_similar_items_follow_the_rules_of_their_endpoint(shop):
    tenant, _ = shop
    product = Product.objects.for_tenant(tenant).order_by("pk")[5]
    plain = similar_items(tenant.pk, product.pk, k=8)
    hidden = plain.items[0]
    create_rule(tenant, {"name": "hide", "kind": "exclude_products", "params": {"product_ids": [hidden.external_id]},
                         "endpoints": ["similar"]})
    _rules_changed(tenant)

    rec = similar_items(tenant.pk, product.pk, k=8)

    assert hidden.product_pk not in _pks(rec) and product.pk not in _pks(rec)
    assert rec.explain["scoring"] == "retrieval"
    assert [i.score for i in rec.items] == [i.retrieval_score for i in rec.items]
    assert all(i.ranker_score is None for i in rec.items)
    assert compiled_rules.compiled_rules(tenant.pk).rules_for("recommendations") == ()  # other endpoints: none


def test_without_a_model_popular_items_pass_the_rules_and_settings(all_tenants):
    tenant = TenantFactory()
    hot, warm, sold_out = (ProductFactory(tenant=tenant) for _ in range(3))
    gone = ProductFactory(tenant=tenant, deleted=True)
    Product.objects.for_tenant(tenant).filter(pk=sold_out.pk).update(stock=0)
    now = timezone.now()
    for product, n in ((hot, 3), (warm, 2), (sold_out, 5), (gone, 9)):
        for _ in range(n):
            EventFactory(tenant=tenant, product=product, ts=now)
    create_rule(tenant, {"name": "no hot", "kind": "exclude_products", "params": {"product_ids": [hot.external_id]}})
    _rules_changed(tenant)
    assert _pks(recommend(tenant.pk, None, k=5)) == [warm.pk]

    RecommendationSettings.objects.create(tenant=tenant, exclude_out_of_stock=False)
    _rules_changed(tenant)
    rec = recommend(tenant.pk, None, k=5)
    assert (rec.reason, _pks(rec)) == (Reason.NO_ACTIVE_MODEL, [sold_out.pk, warm.pk])  # deleted: never
    assert [i.source for i in rec.items] == ["popular", "popular"]


def test_the_ranker_sees_only_the_retrieval_depth_it_was_trained_on_unless_the_head_cannot_fill_k():
    items = np.arange(10, 20)
    categories = np.array(["a"] * 10, dtype=object)
    promoted = np.array([18])
    assert funnel._ranker_rows(items, promoted, categories, 4, 3, None).tolist() == [0, 1, 2, 3, 8]
    # the head of 4 holds at most 2 items of one category under a cap of 2: everything is scored
    assert funnel._ranker_rows(items, promoted, categories, 4, 3, 2).tolist() == list(range(10))
    assert funnel._ranker_rows(items[:3], promoted, categories[:3], 4, 3, None).tolist() == [0, 1, 2]
