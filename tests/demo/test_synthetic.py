"""The synthetic shop generator: determinism, shape of the data, and the signal models should learn."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import json

import numpy as np
import pytest

from demo import synthetic
from demo.synthetic import (
    ADD_TO_CART,
    CLICK,
    EVENT_TYPES,
    IMPRESSION,
    PURCHASE,
    VIEW,
    EventChunk,
    ShopSpec,
    generate_catalog,
    generate_events,
    iter_event_chunks,
    write_csv,
    write_ndjson,
)
from recs.ingest.event_schema import event_decoder

SPEC = ShopSpec(n_customers=400, n_products=2_000, n_events=30_000, seed=7)


@pytest.fixture(scope="module")
def shop():
    catalog = generate_catalog(SPEC)
    return catalog, generate_events(SPEC, catalog)


def _assert_same(a: EventChunk, b: EventChunk) -> None:
    for name, column in a.arrays().items():
        np.testing.assert_array_equal(column, getattr(b, name), err_msg=name)


def _catalog_arrays(catalog) -> dict[str, np.ndarray]:
    out = {}
    for part in ("products", "customers", "stock_changes"):
        for name, value in vars(getattr(catalog, part)).items():
            if isinstance(value, np.ndarray):
                out[f"{part}.{name}"] = value
    return out


def test_same_seed_gives_identical_data_and_bytes(shop, tmp_path):
    catalog, events = shop
    again = generate_catalog(SPEC)
    for name, value in _catalog_arrays(catalog).items():
        np.testing.assert_array_equal(value, _catalog_arrays(again)[name], err_msg=name)
    assert again.categories.paths == catalog.categories.paths
    _assert_same(events, generate_events(SPEC, again))

    small = dataclasses.replace(SPEC, n_events=3_000)
    paths = [tmp_path / "a.ndjson", tmp_path / "b.ndjson"]
    for path in paths:
        write_ndjson(path, iter_event_chunks(small, generate_catalog(small), chunk_size=500))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_different_seed_gives_different_data(shop):
    catalog, events = shop
    other_spec = dataclasses.replace(SPEC, seed=8)
    other = generate_catalog(other_spec)
    assert not np.array_equal(other.products.price, catalog.products.price)
    assert not np.array_equal(other.products.title, catalog.products.title)
    other_events = generate_events(other_spec, other)
    n = min(len(events), len(other_events))
    assert not np.array_equal(other_events.product_idx[:n], events.product_idx[:n])
    assert other_events.event_id[0] != events.event_id[0]  # ids carry the seed: two shops never collide


def test_sizes_near_spec(shop):
    catalog, events = shop
    assert len(catalog.products) == SPEC.n_products
    assert len(catalog.customers) == SPEC.n_customers
    assert abs(len(events) - SPEC.n_events) < 0.1 * SPEC.n_events
    counts = np.bincount(events.event_type, minlength=len(EVENT_TYPES))
    assert counts[VIEW] > 0.7 * len(events)
    assert counts[PURCHASE] > 0 and counts[CLICK] > 0 and counts[IMPRESSION] > 0
    assert counts[VIEW] > counts[ADD_TO_CART] > counts[PURCHASE]


def test_popularity_is_a_power_law(shop):
    catalog, events = shop
    views = np.bincount(events.product_idx[events.event_type == VIEW], minlength=len(catalog.products))
    ranked = np.sort(views)[::-1]
    top_1pct = ranked[: len(ranked) // 100].sum() / ranked.sum()
    assert top_1pct > 0.10  # ten times the uniform share
    assert ranked[: len(ranked) // 10].sum() / ranked.sum() > 0.4


def test_purchases_follow_a_cart_and_a_view_in_the_same_session(shop):
    _, events = shop
    seen: dict[tuple[int, int], set[int]] = {}
    n_purchases = 0
    for session, product, kind in zip(
        events.session_seq.tolist(), events.product_idx.tolist(), events.event_type.tolist(), strict=True
    ):
        history = seen.setdefault((session, product), set())
        if kind == PURCHASE:
            n_purchases += 1
            assert {VIEW, ADD_TO_CART} <= history
        history.add(kind)
    assert n_purchases > 50
    # One customer per session, so "same session" implies "same customer".
    lowest = np.full(events.session_seq.max() + 1, len(events))
    highest = np.full_like(lowest, -1)
    np.minimum.at(lowest, events.session_seq, events.customer_idx)
    np.maximum.at(highest, events.session_seq, events.customer_idx)
    assert (lowest[events.session_seq] == highest[events.session_seq]).all()
    purchases = events.event_type == PURCHASE
    assert (events.quantity[purchases] >= 1).all() and (events.quantity[~purchases] == 0).all()
    assert (events.price[purchases] > 0).all() and np.isnan(events.price[~purchases]).all()


def test_event_ids_unique(shop):
    _, events = shop
    ids = events.event_id
    assert len(set(ids.tolist())) == len(events)
    assert ids[0] == "ev-7-0000000000"
    assert str(events.session_id[0]).startswith("ss-7-")


def test_timestamps_in_range_and_ordered(shop):
    catalog, events = shop
    assert events.ts.min() >= SPEC.start_ts and events.ts.max() < SPEC.end_ts
    assert (np.diff(events.ts) >= 0).all()  # the stream is in global time order
    order = np.lexsort((events.event_seq, events.session_seq))
    same_session = np.diff(events.session_seq[order]) == 0
    assert (np.diff(events.ts[order])[same_session] > 0).all()
    assert (catalog.customers.created_at[events.customer_idx] <= events.ts).all()
    session_start = np.full(events.session_seq.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(session_start, events.session_seq, events.ts)
    assert (np.diff(session_start) >= 0).all()  # sessions are numbered in start order


def test_category_affinity(shop):
    catalog, events = shop
    views = events.event_type == VIEW
    category = catalog.products.category[events.product_idx[views]]
    customer = events.customer_idx[views]
    n_leaves = catalog.categories.n_leaves
    top3, preferred = [], []
    for c in np.flatnonzero(np.bincount(customer) >= 30):
        mine = category[customer == c]
        top3.append(np.sort(np.bincount(mine, minlength=n_leaves))[::-1][:3].sum() / len(mine))
        preferred.append(np.isin(mine, catalog.customers.preferred_categories[c]).mean())
    assert len(top3) > 50
    # Uniform browsing over 64 categories would put under 10% in any three.
    assert np.mean(top3) > 0.6
    assert np.mean(preferred) > 0.55


def test_chunked_iteration_concatenates_to_one_chunk(shop):
    catalog, events = shop
    for size in (1_000, 4_321):
        chunks = list(iter_event_chunks(SPEC, catalog, chunk_size=size))
        assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size
        _assert_same(EventChunk.concat(chunks), events)


def test_many_time_blocks_keep_order_and_chunk_independence():
    # Small blocks exercise the hand-over of sessions that straddle a block end.
    block_size = 700
    spec = ShopSpec(n_customers=200, n_products=300, n_events=8_000, seed=2, end_ts=SPEC.start_ts + 3 * 86_400)
    catalog = generate_catalog(spec)
    assert len(synthetic._EventModel(spec, catalog, block_size).block_sessions) > 10  # not one block
    whole = generate_events(spec, catalog, events_per_block=block_size)
    assert abs(len(whole) - spec.n_events) < 0.15 * spec.n_events
    assert (np.diff(whole.ts) >= 0).all()
    chunks = iter_event_chunks(spec, catalog, chunk_size=333, events_per_block=block_size)
    _assert_same(EventChunk.concat(chunks), whole)
    order = np.lexsort((whole.event_seq, whole.session_seq))
    same_session = np.diff(whole.session_seq[order]) == 0
    assert (np.diff(whole.ts[order])[same_session] > 0).all()


def test_nothing_is_carted_or_bought_out_of_stock(shop):
    catalog, events = shop
    buying = np.isin(events.event_type, [ADD_TO_CART, PURCHASE])
    assert (catalog.stock_at(events.product_idx[buying], events.ts[buying]) > 0).all()
    changes = catalog.stock_changes
    assert (np.diff(changes.ts) >= 0).all()
    assert (changes.stock == 0).any() and (changes.stock > 0).any()  # products sell out and come back
    assert (catalog.products.stock == 0).any()


def test_popularity_drifts_with_trending_items(shop):
    catalog, events = shop
    model = synthetic._EventModel(SPEC, catalog)
    views = events.event_type == VIEW
    period = (events.ts[views] - SPEC.start_ts) // model.period
    trending_first_week = np.unique(model.trending[0])
    hit = np.isin(events.product_idx[views], trending_first_week)
    assert hit[period == 0].mean() > 1.5 * hit[period > 0].mean()


def test_daily_rhythm(shop):
    _, events = shop
    hours = np.bincount((events.ts // 3600) % 24, minlength=24)
    assert hours[18:22].sum() > 3 * hours[2:6].sum()


def test_catalog_records_are_readable(shop):
    catalog, _ = shop
    assert catalog.categories.n_leaves == SPEC.n_leaf_categories
    assert all(len(p) == SPEC.category_depth for p in catalog.categories.paths)
    assert len(set(catalog.categories.paths)) == catalog.categories.n_leaves
    products = catalog.products
    assert products.external_id[123] == "sku-000123"
    assert catalog.customers.external_id[5] == "cust-000005"
    assert (products.price >= 0.99).all()
    assert np.allclose(np.round(products.price * 100) % 100, 99)
    record = catalog.product_record(0)
    assert set(record) == {
        "external_id", "title", "description", "category_path", "brand", "price", "currency", "stock",
        "available", "tags", "attributes",
    }
    assert record["brand"] in record["title"] and record["title"] in record["description"]
    assert record["category_path"] == list(catalog.categories.paths[products.category[0]])
    assert "color" in record["attributes"] and all(t in synthetic._TAGS for t in record["tags"])
    customer = catalog.customer_record(0)
    assert set(customer["attributes"]) == {"country", "signup_channel"}
    assert dt.datetime.fromisoformat(customer["created_at"]).tzinfo is not None
    assert json.loads(json.dumps(list(catalog.iter_product_records(0, 5))))[4]["external_id"] == "sku-000004"


@pytest.mark.parametrize(("depth", "fanout"), [(1, 3), (2, 6), (4, 2)])
def test_category_tree_shapes(depth, fanout):
    spec = ShopSpec(n_customers=50, n_products=100, n_events=500, category_depth=depth, category_fanout=fanout)
    catalog = generate_catalog(spec)
    assert catalog.categories.n_leaves == fanout**depth
    assert {len(p) for p in catalog.categories.paths} == {depth}
    assert len(set(catalog.categories.paths)) == fanout**depth
    assert len(generate_events(spec, catalog)) > 0


def test_ndjson_and_csv_shapes(tmp_path):
    spec = dataclasses.replace(SPEC, n_events=4_000)
    catalog = generate_catalog(spec)
    events = generate_events(spec, catalog)
    assert write_ndjson(tmp_path / "e.ndjson", [events]) == len(events)
    assert write_csv(tmp_path / "e.csv.gz", [events]) == len(events)

    records = [json.loads(line) for line in (tmp_path / "e.ndjson").read_text().splitlines()]
    assert len(records) == len(events)
    base = {"event_id", "type", "customer_id", "product_id", "session_id", "timestamp"}
    for record in records:
        assert set(record) == (base | {"quantity", "price"} if record["type"] == "purchase" else base)
    first = records[0]
    assert first["event_id"] == events.event_id[0] and first["product_id"] == events.product_id[0]
    assert dt.datetime.fromisoformat(first["timestamp"]).timestamp() == events.ts[0]
    i = int(np.flatnonzero(events.event_type == PURCHASE)[0])
    assert records[i]["price"] == events.price[i] and records[i]["quantity"] == events.quantity[i]

    with gzip.open(tmp_path / "e.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(events) and rows[i]["type"] == "purchase"
    assert float(rows[i]["price"]) == events.price[i] and rows[0]["quantity"] == ""


def test_ndjson_is_accepted_by_the_ingest_schema():
    spec = dataclasses.replace(SPEC, n_events=2_000)
    catalog = generate_catalog(spec)
    lines = synthetic.format_ndjson(generate_events(spec, catalog)).splitlines()
    assert abs(len(lines) - 2_000) < 300
    decoded = [event_decoder.decode(line) for line in lines]
    assert all(e.customer_id and e.product_id and e.type for e in decoded)


def test_cli(tmp_path, capsys):
    out = tmp_path / "out.ndjson"
    products = tmp_path / "products.ndjson"
    argv = ["--products", "200", "--customers", "100", "--events", "2000", "--seed", "1", "--ndjson", str(out),
            "--products-ndjson", str(products), "--no-progress"]
    assert synthetic.main(argv) == 0
    lines = out.read_text().splitlines()
    assert abs(len(lines) - 2_000) < 300
    assert len(products.read_text().splitlines()) == 200
    assert "events" in capsys.readouterr().err
    first = out.read_bytes()
    synthetic.main(argv)
    assert out.read_bytes() == first
    assert lines[0].startswith('{"event_id":"ev-1-')
