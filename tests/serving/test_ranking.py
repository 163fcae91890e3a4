"""The served DLRM ranker: online features equal training's at the same moment (no train/serve skew),
real-time customer features, hot-swapped item snapshots, visible fallbacks. A tiny trained shop on real
PostgreSQL rows."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
from django.db.models import Count

from recs.ingest.event_types import event_weights
from recs.ingest.events import ingest_events
from recs.models import Customer, Event, Product
from recs.rules.service import update_settings
from serving import funnel, online_features, ranking, registry_cache
from serving import index as item_index
from serving.funnel import recent_history
from serving.ranking import ScoreSource
from serving.tasks import refresh_online_features
from training.artifacts import ITEM_FEATURES_FILE, SNAPSHOT_DIR, read_snapshot_pointer
from training.datasets import load_tenant_dataset
from training.features import DENSE_FEATURES, ITEM_FEATURES, FeatureContext
from training.inference import TrainedPipeline, predict_ranker, recommend

pytestmark = pytest.mark.django_db


def _active_customer(tenant) -> Customer:
    """The customer with the most events (a long history: every taste feature has something to read)."""
    pk = (
        Event.objects.for_tenant(tenant).values("customer_id").annotate(n=Count("id"))
        .order_by("-n", "customer_id").values_list("customer_id", flat=True)[0]
    )
    return Customer.objects.for_tenant(tenant).get(pk=pk)


def _candidates(model, customer_pk: int, tenant_id: int, k: int = 120) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The customer's top-k retrieval candidates (item indices, scores) as the funnel finds them."""
    pks, weights = recent_history(tenant_id, customer_pk, None, model.retrieval.history_len)
    items = model.item_indices(pks)
    history = (items[items >= 0], weights[items >= 0])
    query = model.retrieval.embed_customers(
        np.array([model.customer_index(customer_pk)]), ranking.customer_history(model, *history)
    )
    scores, ids = item_index.search(model.index, query, k)
    return ids[0], scores[0], history


def _offline(tenant_id: int, model, customer_pk: int, at: int, candidates: np.ndarray, scores: np.ndarray,
             neighbours=None):
    """Training's path: a FeatureContext over the tenant's events before `at`, asked at `at` (with the model's
    embeddings, and its co-occurrence table when given, else one built from those events)."""
    data = load_tenant_dataset(tenant_id, until=dt.datetime.fromtimestamp(at, dt.UTC))
    assert np.array_equal(data.product_pks, model.product_pks)
    ctx = FeatureContext(data.interactions, data.items, model.retrieval.item_embeddings, model.retrieval.history_len,
                         neighbours=neighbours)
    c = int(np.searchsorted(data.customer_pks, customer_pk))
    inputs = ctx.ranker_inputs(np.array([c]), np.array([at]), candidates[None, :], scores[None, :],
                               model.retrieval.recency_decay)
    return ctx, c, data, inputs


def _assert_same_columns(online: np.ndarray, offline: np.ndarray) -> None:
    assert online.shape == offline.shape == (offline.shape[0], len(DENSE_FEATURES))
    for j, name in enumerate(DENSE_FEATURES):
        np.testing.assert_allclose(online[:, j], offline[:, j], rtol=1e-5, atol=1e-6, err_msg=name)


def test_online_features_equal_training_features_now(shop):
    """Skew test: the served snapshot + per-request customer state against a FeatureContext over all events,
    at the snapshot's moment (just after the newest event), for a customer's real retrieval candidates."""
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    snapshot = online_features.build_snapshot(tenant.pk, model.version_id)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk)

    state = online_features.online_features(tenant.pk, model)
    assert state.snapshot.as_of == snapshot.as_of
    online, online_history = ranking.online_inputs(tenant.pk, model, state, customer.pk, *history, candidates, scores)
    _, _, data, offline = _offline(tenant.pk, model, customer.pk, snapshot.as_of, candidates, scores)

    _assert_same_columns(online, offline.dense)
    assert online_history.items.values.tolist() == offline.history.values.tolist()
    # Training reads the attributes through the catalog's version history (as of each example's time):
    # now, that is the latest version of every item, i.e. the catalog the version serves with.
    with_versions = FeatureContext(data.interactions, data.items, model.retrieval.item_embeddings,
                                   model.retrieval.history_len, data.item_versions)
    c = int(np.searchsorted(data.customer_pks, customer.pk))
    _assert_same_columns(online, with_versions.ranker_inputs(
        np.array([c]), np.array([snapshot.as_of]), candidates[None, :], scores[None, :], model.retrieval.recency_decay
    ).dense)
    # The features vary (a test of equal constants would prove nothing).
    for name in ("item_log_count_7d", "item_log_days_since_last", "category_affinity", "history_max_similarity",
                 "history_cooccurrence"):
        assert np.ptp(online[:, DENSE_FEATURES.index(name)]) > 0, name
    # And so do the ranker's probabilities: served = training's predict_ranker.
    served = ranking.score(tenant.pk, model, customer.pk, *history, candidates, scores)
    assert served.source == ScoreSource.RANKER and served.snapshot_as_of == snapshot.as_of
    expected = predict_ranker(model.ranker, offline, data.items)[0]
    np.testing.assert_allclose(served.scores, expected, rtol=1e-4, atol=1e-6)


def test_online_features_equal_training_features_in_the_past(shop):
    """The same at a moment in the middle of the data: item windows then hold events on both sides."""
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    ts = np.sort(Event.objects.for_tenant(tenant).filter(customer_id=customer.pk).values_list("ts", flat=True))
    at = int(ts[len(ts) // 2].timestamp())  # half of this customer's events are before it
    # An older snapshot never replaces a newer one: start from none.
    shutil.rmtree(online_features.online_features(tenant.pk, model).folder / SNAPSHOT_DIR)
    online_features.clear()
    snapshot = online_features.build_snapshot(tenant.pk, model.version_id, as_of=at)
    candidates = np.random.default_rng(0).permutation(model.n_items)[:150]
    scores = np.sort(np.random.default_rng(1).random(150).astype(np.float32))[::-1].copy()

    state = online_features.online_features(tenant.pk, model)
    ctx, c, _, offline = _offline(tenant.pk, model, customer.pk, at, candidates, scores, state.catalog.neighbours)
    # The history training cuts for this moment, handed over as the funnel hands it (items, event weights).
    end = int(ctx.customer_events_before(np.array([c]), np.array([at]))[0])
    begin = max(int(ctx.hist.start[c]), end - model.retrieval.history_len)
    history = (ctx.hist.item[begin:end], ctx.hist.weight[begin:end])
    assert state.snapshot.as_of == snapshot.as_of == at
    online, _ = ranking.online_inputs(tenant.pk, model, state, customer.pk, *history, candidates, scores,
                                      before=dt.datetime.fromtimestamp(at, dt.UTC))

    assert 0 < end - int(ctx.hist.start[c]) < len(ts)
    _assert_same_columns(online, offline.dense)


def test_an_event_posted_now_changes_the_customer_features_of_the_next_score(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk, k=60)
    state = online_features.online_features(tenant.pk, model)
    before, _ = ranking.online_inputs(tenant.pk, model, state, customer.pk, *history, candidates, scores)
    first = ranking.score_candidates(tenant.pk, model, customer.pk, *history, candidates, scores)
    n_before, _ = online_features.customer_activity(tenant.pk, customer.pk)

    product = Product.objects.for_tenant(tenant).get(pk=model.product_pks[candidates[-1]])
    row = {"type": "purchase", "customer_id": customer.external_id, "product_id": product.external_id}
    assert ingest_events(tenant.pk, [row]).stored == 1
    _, _, history = _candidates(model, customer.pk, tenant.pk, k=60)  # the funnel re-reads the history
    after, _ = ranking.online_inputs(tenant.pk, model, state, customer.pk, *history, candidates, scores)
    second = ranking.score_candidates(tenant.pk, model, customer.pk, *history, candidates, scores)

    col = DENSE_FEATURES.index
    assert after[0, col("customer_log_events")] == pytest.approx(np.log1p(n_before + 1))
    assert before[0, col("customer_log_events")] == pytest.approx(np.log1p(n_before))
    assert after[0, col("customer_mean_weight")] != before[0, col("customer_mean_weight")]
    assert not np.array_equal(after[:, col("history_max_similarity")], before[:, col("history_max_similarity")])
    # The item side waits for the next snapshot (bounded staleness), so only the customer side moved.
    item_cols = [col(name) for name in ITEM_FEATURES]
    np.testing.assert_array_equal(after[:, item_cols], before[:, item_cols])
    assert not np.allclose(first, second)


def test_the_ranker_reorders_the_retrieval_candidates(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk, k=50)

    result = ranking.score(tenant.pk, model, customer.pk, *history, candidates, scores)

    assert result.source == ScoreSource.RANKER
    assert result.scores.dtype == np.float32 and result.scores.shape == (50,)
    assert ((result.scores > 0) & (result.scores < 1)).all()
    order = np.argsort(-result.scores, kind="stable")
    assert order.tolist() != list(range(50))  # not the retrieval order


def test_the_served_order_follows_the_ranker(shop):
    """Through the funnel: the answer is ordered by the ranker's probability, not the retrieval score."""
    tenant, _ = shop
    customer = _active_customer(tenant)
    rec = funnel.recommend(tenant.pk, customer.pk, k=10)
    items = [i for i in rec.items if i.retrieval_score is not None]
    assert len(items) >= 5
    scores = [i.score for i in items]
    assert scores == sorted(scores, reverse=True)
    assert any(i.score != i.retrieval_score for i in items)
    retrieval = [i.retrieval_score for i in items]
    assert retrieval != sorted(retrieval, reverse=True)  # the ranker moved something
    assert rec.explain["scoring"] == "ranker"


def test_the_answer_is_what_training_inference_answers_at_the_same_moment(shop):
    """End to end, the funnel (FAISS retrieval, the consumed filter, the ranker's head, the order) answers what
    training's inference answers at the snapshot's moment (exact retrieval without the customer's items,
    point-in-time features, `predict_ranker`), once every event type the customers sent counts as consumed:
    the offline protocol removes every item a customer has an event of. The activation metric scores the
    latter, so it scores what the shop's customers receive."""
    tenant, _ = shop
    preferences = sorted(name for name, weight in event_weights(tenant.pk).items() if weight > 0)
    update_settings(tenant, {"consumed_event_types": preferences, "exclude_out_of_stock": False})
    model = registry_cache.served_model(tenant.pk)
    snapshot = online_features.online_features(tenant.pk, model).snapshot
    data = load_tenant_dataset(tenant.pk)
    pks = np.array(
        Event.objects.for_tenant(tenant).values("customer_id").annotate(n=Count("id"))
        .order_by("-n", "customer_id").values_list("customer_id", flat=True)[:8]
    )
    pipeline = TrainedPipeline(model.retrieval, model.ranker, model.num_candidates)
    top, _ = recommend(pipeline, data.interactions, data.items, np.searchsorted(data.customer_pks, pks), k=20,
                       item_versions=data.item_versions, at=snapshot.as_of)
    expected = data.product_pks[top]

    for pk, offline in zip(pks.tolist(), expected.tolist(), strict=True):
        answer = funnel.recommend(tenant.pk, pk, k=20)
        assert answer.explain["scoring"] == "ranker"
        assert [item.product_pk for item in answer.items] == offline


def test_a_new_snapshot_is_swapped_in_without_a_restart(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    first = online_features.online_features(tenant.pk, model).snapshot
    newest = int(Event.objects.for_tenant(tenant).order_by("-ts").values_list("ts", flat=True)[0].timestamp())
    earlier = newest - 7 * 86_400
    # An older moment never replaces a newer snapshot (two builders racing)...
    online_features.build_snapshot(tenant.pk, model.version_id, as_of=earlier)
    assert online_features.online_features(tenant.pk, model).snapshot.as_of == first.as_of
    # ...a newer one is picked up by the running process on its next request.
    product = Product.objects.for_tenant(tenant).order_by("id").first()
    row = {"type": "view", "customer_id": _active_customer(tenant).external_id, "product_id": product.external_id}
    assert ingest_events(tenant.pk, [row]).stored == 1
    assert refresh_online_features() == 1  # the beat task (eager): one build per active version
    swapped = online_features.online_features(tenant.pk, model).snapshot
    assert swapped.as_of > first.as_of and swapped.n_events == first.n_events + 1
    assert isinstance(swapped.columns, np.memmap)
    assert len(list((online_features.online_features(tenant.pk, model).folder / SNAPSHOT_DIR).glob("*.npy"))) <= 2


def test_without_a_snapshot_it_falls_back_to_retrieval_order_and_queues_a_build(
    shop, django_capture_on_commit_callbacks
):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk, k=30)
    folder = online_features.online_features(tenant.pk, model).folder
    shutil.rmtree(folder / SNAPSHOT_DIR)
    online_features.clear()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = ranking.score(tenant.pk, model, customer.pk, *history, candidates, scores)

    assert result.source == ScoreSource.NO_SNAPSHOT
    np.testing.assert_array_equal(result.scores, scores.astype(np.float32))
    assert len(callbacks) == 1 and read_snapshot_pointer(folder) is not None  # the build ran (eager)
    again = ranking.score(tenant.pk, model, customer.pk, *history, candidates, scores)
    assert again.source == ScoreSource.RANKER


def test_a_version_trained_before_item_features_were_saved_is_served_in_retrieval_order(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk, k=30)
    folder = online_features.online_features(tenant.pk, model).folder
    (folder / ITEM_FEATURES_FILE).unlink()
    online_features.clear()

    result = ranking.score(tenant.pk, model, customer.pk, *history, candidates, scores)

    assert result.source == ScoreSource.NO_ITEM_FEATURES
    np.testing.assert_array_equal(
        ranking.score_candidates(tenant.pk, model, customer.pk, *history, candidates, scores),
        scores.astype(np.float32),
    )


def test_bad_inputs_are_refused(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    with pytest.raises(ValueError, match="differ in length"):
        ranking.score_candidates(tenant.pk, model, None, np.zeros(0), np.zeros(0), np.arange(3), np.zeros(2))
    with pytest.raises(ValueError, match="outside"):
        ranking.score_candidates(tenant.pk, model, None, np.zeros(0), np.zeros(0),
                                 np.array([model.n_items]), np.zeros(1))
    empty = ranking.score_candidates(tenant.pk, model, None, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    assert empty.shape == (0,) and empty.dtype == np.float32


def test_an_anonymous_visitor_is_scored_from_the_session_history(shop):
    tenant, _ = shop
    model = registry_cache.served_model(tenant.pk)
    customer = _active_customer(tenant)
    candidates, scores, history = _candidates(model, customer.pk, tenant.pk, k=40)
    state = online_features.online_features(tenant.pk, model)

    dense, _ = ranking.online_inputs(tenant.pk, model, state, None, *history, candidates, scores)
    probs = ranking.score_candidates(tenant.pk, model, None, *history, candidates, scores)

    assert (dense[:, DENSE_FEATURES.index("customer_log_events")] == 0).all()
    np.testing.assert_allclose(dense[:, DENSE_FEATURES.index("customer_mean_weight")],
                               state.snapshot.global_mean_weight, rtol=1e-6)
    assert probs.shape == (40,) and np.isfinite(probs).all()
