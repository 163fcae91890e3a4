import dataclasses

import numpy as np
import pytest
import torch

from training.artifacts import TrainedRanker, TrainedRetrieval
from training.cooccurrence import item_neighbours
from training.data import Interactions, ItemFeatures, Jagged, make_history, temporal_split
from training.evaluation import roc_auc
from training.features import DENSE_FEATURES, FeatureContext
from training.models.ranker import Ranker, RankerConfig
from training.pipeline import TrainedPipeline, recommend, train_pipeline
from training.trainers.ranker import train_ranker
from training.trainers.two_tower import retrieval_metrics, train_two_tower

from .conftest import make_tenant

SMALL = {"dim": 16, "hidden": 32, "epochs": 3, "batch_size": 64, "lr": 1e-2, "history_len": 10}


def test_two_tower_shapes_norms_and_progress(tenant):
    interactions, items = tenant
    reports: list[dict] = []
    model = train_two_tower(interactions, items, **SMALL, progress=reports.append)
    assert model.item_embeddings.shape == (interactions.n_items, 16)
    assert model.item_embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(model.item_embeddings, axis=1), 1.0, atol=1e-5)
    emb = model.embed_customers(np.array([0, -1]), make_history([[1, 2, 3], [4]]))
    assert emb.shape == (2, 16)
    assert reports and {"stage", "epoch", "step", "loss", "percent"} <= reports[-1].keys()
    assert reports[-1]["percent"] == 100.0


def test_two_tower_learns_the_synthetic_taste(tenant):
    interactions, items = tenant
    train, test = temporal_split(interactions)
    model = train_two_tower(train, items, **{**SMALL, "epochs": 8})
    metrics = retrieval_metrics(model, train, test)
    assert metrics["hr@10"] > 0.5  # random would be ~ 10 / 60 per test item


def test_training_is_deterministic_with_a_seed(tenant):
    interactions, items = tenant
    a = train_two_tower(interactions, items, **SMALL, seed=7)
    b = train_two_tower(interactions, items, **SMALL, seed=7)
    np.testing.assert_array_equal(a.item_embeddings, b.item_embeddings)


def test_save_load_round_trip_gives_identical_embeddings(tenant, tmp_path):
    interactions, items = tenant
    model = train_two_tower(interactions, items, **SMALL)
    model.save(tmp_path / "tt")
    loaded = TrainedRetrieval.load(tmp_path / "tt")
    np.testing.assert_array_equal(loaded.item_embeddings, model.item_embeddings)
    np.testing.assert_array_equal(loaded.embed_items(items), model.embed_items(items))
    hist = make_history([[1, 2], [5, 6, 7]])
    np.testing.assert_array_equal(
        loaded.embed_customers(np.array([0, 1]), hist), model.embed_customers(np.array([0, 1]), hist)
    )
    assert loaded.hparams == model.hparams


def test_cold_start_item_gets_an_embedding_from_features(tenant):
    everything, items = tenant
    never_seen = np.arange(everything.n_items - 3, everything.n_items)  # products nobody interacted with
    kept = ~np.isin(everything.item, never_seen)
    interactions = dataclasses.replace(everything, customer=everything.customer[kept], item=everything.item[kept],
                                       ts=everything.ts[kept], weight=everything.weight[kept])
    model = train_two_tower(interactions, items, **SMALL)
    # A brand-new product (index past the trained catalog) with a category and a brand.
    new = ItemFeatures(
        category=Jagged.from_single([2]),
        brand=Jagged.from_single([3]),
        price_bucket=Jagged.from_single([1]),
        title_tokens=Jagged.from_lists([[4]]),
        n_categories=4, n_brands=5, n_price_buckets=5, n_title_tokens=12,
    )  # fmt: skip
    emb = model.embed_items(new, np.array([-1]))
    assert emb.shape == (1, 16)
    assert np.abs(emb).sum() > 0
    # An item nobody interacted with is embedded from its features too.
    assert np.abs(model.item_embeddings[never_seen]).sum(1).min() > 0


def _ranker_batch(n: int, rng: np.random.Generator):
    cfg = RankerConfig(n_items=20, n_categories=4, n_brands=2, n_price_buckets=3, dense_features=("signal", "noise"))
    label = rng.integers(0, 2, n).astype(np.float32)
    dense = np.stack([label * 2.0 - 1.0 + 0.8 * rng.standard_normal(n), rng.standard_normal(n)], 1)
    items = ItemFeatures(
        Jagged.from_single(rng.integers(0, 4, 20)), Jagged.from_single(np.zeros(20, np.int64)),
        Jagged.from_single(rng.integers(0, 3, 20)), Jagged.from_single(np.zeros(20, np.int64)), 4, 2, 3, 1,
    )  # fmt: skip
    return cfg, label, dense.astype(np.float32), items


def test_ranker_outputs_probabilities_and_learns_a_separable_signal():
    from training.features import ranker_kjt

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg, label, dense, items = _ranker_batch(2000, rng)
    model = Ranker(cfg)
    item = rng.integers(0, 20, len(label))
    history = Jagged.from_lists([[int(i)] for i in rng.integers(0, 20, len(label))])
    kjt = ranker_kjt(items, item, history)
    x, y = torch.from_numpy(dense), torch.from_numpy(label)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, kjt), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    probs = model.predict_proba(x, kjt).numpy()
    assert ((probs > 0) & (probs < 1)).all()
    assert roc_auc(label, probs) > 0.9


def test_train_ranker_on_stacked_examples_and_round_trip(tmp_path):
    interactions, items = make_tenant(n_customers=60, events_per_customer=18)
    history, future = temporal_split(interactions, 0.3)
    retrieval = train_two_tower(history, items, **SMALL)
    ranker = train_ranker(history, future, items, retrieval, num_candidates=20, epochs=2, batch_size=128)
    assert ranker.config.dense_features == DENSE_FEATURES
    assert 0 < ranker.metrics["positive_rate"] < 1
    ranker.save(tmp_path / "rk")
    loaded = TrainedRanker.load(tmp_path / "rk")
    for k, v in ranker.state.items():
        assert torch.equal(v, loaded.state[k])


def test_pipeline_end_to_end_and_save_load(tmp_path):
    interactions, items = make_tenant(n_customers=60, events_per_customer=18)
    train, test = temporal_split(interactions)
    pipe = train_pipeline(
        train, items, retrieval_params=SMALL, ranker_params={"epochs": 1, "batch_size": 256}, num_candidates=20
    )
    customers = np.unique(test.customer)
    top, probs = recommend(pipe, train, items, customers, k=10)
    assert top.shape == (len(customers), 10)
    assert ((probs > 0) & (probs < 1)).all()
    assert (np.diff(probs, axis=1) <= 0).all()
    # Nothing already seen in train is recommended.
    seen = {(int(c), int(i)) for c, i in zip(train.customer, train.item, strict=True)}
    assert not any((int(c), int(i)) in seen for c, row in zip(customers, top, strict=True) for i in row)
    pipe.save(tmp_path / "pipe")
    again = recommend(TrainedPipeline.load(tmp_path / "pipe"), train, items, customers, k=10)
    np.testing.assert_array_equal(again[0], top)


def test_features_never_read_the_future(tenant):
    interactions, items = tenant
    t_cut = int(np.median(interactions.ts))
    past = interactions.take(np.flatnonzero(interactions.ts < t_cut))
    customers = np.arange(5)
    cand = np.tile(np.arange(8), (5, 1))
    scores = np.zeros((5, 8), np.float32)
    at = np.full(5, t_cut)
    table = item_neighbours(interactions, items.n_items)  # the model's, as the embeddings would be: given to both
    a = FeatureContext(past, items, neighbours=table).ranker_inputs(customers, at, cand, scores)
    b = FeatureContext(interactions, items, neighbours=table).ranker_inputs(customers, at, cand, scores)
    np.testing.assert_allclose(a.dense, b.dense, rtol=1e-6)
    assert a.history.values.tolist() == b.history.values.tolist()


def test_mixed_negatives_correct_each_pool_column_by_its_expected_count_and_mask_accidental_hits():
    """The mixed loss is the softmax over the batch's positives plus uniform draws, each column's logit
    lowered by log(B q(item) + M / n_items); a drawn item equal to a row's positive is no negative for it."""
    from training.data import customer_kjt, item_kjt
    from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig, TwoTowerRetrievalTask

    _, items = make_tenant()
    cfg = TwoTowerConfig(n_customers=40, n_items=60, n_categories=4, n_brands=5, n_price_buckets=5,
                         n_title_tokens=12, dim=8, hidden=16, id_dropout=0.0)
    torch.manual_seed(0)
    q = torch.rand(60) + 0.1
    log_q = (q / q.sum()).log()
    task = TwoTowerRetrievalTask(CustomerTower(cfg), ItemTower(cfg), log_q, temperature=0.5).eval()
    customers, positives, sampled = np.array([0, 1, 2]), np.array([5, 9, 5]), np.array([9, 30, 41, 7])
    ckjt = customer_kjt(customers, make_history([[1], [2, 3], []]))
    loss = task(ckjt, item_kjt(items, positives), torch.from_numpy(positives), None,
                item_kjt(items, sampled), torch.from_numpy(sampled))

    with torch.no_grad():
        u = task.customer_tower(ckjt)
        pool = np.concatenate([positives, sampled])
        v = task.item_tower(item_kjt(items, pool))
        expected_count = 3 * log_q.exp()[pool] + 4 / 60
        logits = u @ v.T / 0.5 - expected_count.log()
        for row, positive in enumerate(positives):
            for col, item in enumerate(pool):
                if item == positive and col != row:  # row 0 and row 2 share item 5; row 1's item 9 was drawn
                    logits[row, col] = float("-inf")
        manual = torch.nn.functional.cross_entropy(logits, torch.arange(3))
    torch.testing.assert_close(loss, manual)
    assert torch.isinf(logits[1, 3]) and torch.isinf(logits[0, 2]) and torch.isfinite(logits[1, 1])


@pytest.mark.parametrize("variant", [{"sampled_negatives": 32}, {"future_window": 4}])
def test_two_tower_variants_learn_the_synthetic_taste(tenant, variant):
    """Mixed negatives; each event the positive of a history cut up to three events before it."""
    interactions, items = tenant
    train, test = temporal_split(interactions)
    model = train_two_tower(train, items, **{**SMALL, "epochs": 8}, **variant)
    assert {name: model.hparams[name] for name in variant} == variant
    assert retrieval_metrics(model, train, test)["hr@10"] > 0.5


def _walks(n_customers: int = 200, n_items: int = 60, length: int = 12) -> Interactions:
    """Every customer walks the catalog in order from a random start: after item x come x+1, x+2, ..."""
    start = np.random.default_rng(0).integers(0, n_items, n_customers)
    item = ((start[:, None] + np.arange(length)) % n_items).reshape(-1)
    return Interactions(
        customer=np.repeat(np.arange(n_customers), length), item=item,
        ts=1_600_000_000 + np.tile(np.arange(length) * 3600, n_customers),
        weight=np.ones(len(item), np.float32), n_customers=n_customers, n_items=n_items,
    )


def test_a_window_of_later_events_teaches_what_comes_a_few_events_later():
    events = _walks()
    _, items = make_tenant(n_items=events.n_items)
    x = np.arange(events.n_items)
    three_ahead = (x + 3) % events.n_items

    def mean_rank_three_ahead(window: int) -> float:
        model = train_two_tower(events, items, **{**SMALL, "epochs": 8}, future_window=window)
        scores = model.embed_customers(np.full(len(x), -1), make_history([[i] for i in x])) @ model.item_embeddings.T
        return float(np.mean((scores > scores[x, three_ahead][:, None]).sum(axis=1)))

    # Next event only, about 28 of the 60 items score above the item three steps on; with a window of 4, about 1.
    assert mean_rank_three_ahead(4) < 5 < 15 < mean_rank_three_ahead(1)


def test_uniform_negatives_are_drawn_among_items_with_events(tenant):
    """A product nobody took is never a uniform negative: its id row keeps its initial value, so a new
    product is embedded from content features that were not trained to push it away (cold start)."""
    from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig
    from training.trainers.common import seed_everything

    interactions, items = tenant
    without = np.array([3, 17, 44])
    others = np.setdiff1d(np.arange(interactions.n_items), without)
    warm = interactions.take(np.flatnonzero(~np.isin(interactions.item, without)))
    model = train_two_tower(warm, items, **SMALL, sampled_negatives=64, seed=5)
    seed_everything(5)  # the trainer builds its towers right after seeding: customer tower, then item tower
    cfg = TwoTowerConfig(**model.config.to_dict())
    CustomerTower(cfg)
    initial = ItemTower(cfg).state_dict()
    key = next(k for k in initial if "t_item_id" in k)
    trained, start = model.item_tower_state[key], initial[key]
    torch.testing.assert_close(trained[without], start[without])
    assert not torch.allclose(trained[others], start[others])
