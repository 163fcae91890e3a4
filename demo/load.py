"""Load the demo tenants: MovieLens (real ratings) and a synthetic shop. Idempotent: re-running stores
nothing twice (stable event ids, upserts by external id)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from recs.ingest.catalog import upsert_customers, upsert_products
from recs.ingest.errors import IngestResult
from recs.ingest.event_schema import EventIn
from recs.ingest.events import ingest_events

Progress = Callable[[str, int, int], None]
EVENT_BATCH = 10_000
CATALOG_BATCH = 1_000


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _noop(stage: str, done: int, total: int) -> None:
    pass


def movielens_catalog(frame) -> tuple[list[dict], list[dict]]:
    movies = frame.drop_duplicates("movieId").sort_values("movieId")
    products = []
    for movie_id, title, year, genres in movies[["movieId", "title", "year", "genres"]].itertuples(index=False):
        genre_list = [g for g in str(genres).split("|") if g and g != "(no genres listed)"]
        attributes = {"genres": genre_list}
        if isinstance(year, (int, float)) and not math.isnan(year):
            attributes["year"] = int(year)
        products.append({
            "external_id": f"movie-{movie_id}",
            "title": str(title)[:500],
            "category_path": ["Movies", genre_list[0]] if genre_list else ["Movies"],
            "tags": genre_list[:50],
            "attributes": attributes,
            "available": True,
        })
    customers = [{"external_id": f"user-{u}", "attributes": {}} for u in sorted(frame["userId"].unique())]
    return products, customers


def movielens_events(frame) -> Iterator[EventIn]:
    for user, movie, rating, ts in frame[["userId", "movieId", "rating", "timestamp"]].itertuples(index=False):
        yield EventIn(
            type="rating", customer_id=f"user-{user}", product_id=f"movie-{movie}",
            timestamp=dt.datetime.fromtimestamp(int(ts), dt.UTC), value=float(rating),
            event_id=f"ml-{user}-{movie}-{int(ts)}",
        )


def load_catalog(tenant_id: int, products: list[dict], customers: list[dict], progress: Progress = _noop) -> None:
    for done, batch in enumerate(_batches(products, CATALOG_BATCH), 1):
        upsert_products(tenant_id, batch)
        progress("products", min(done * CATALOG_BATCH, len(products)), len(products))
    for done, batch in enumerate(_batches(customers, CATALOG_BATCH), 1):
        upsert_customers(tenant_id, batch)
        progress("customers", min(done * CATALOG_BATCH, len(customers)), len(customers))


def load_events(tenant_id: int, events: Iterable, total: int, progress: Progress = _noop) -> IngestResult:
    result = IngestResult()
    for batch in _batches(events, EVENT_BATCH):
        result.merge(ingest_events(tenant_id, batch), row_offset=result.received)
        progress("events", result.received, total)
    return result


def load_movielens(tenant_id: int, progress: Progress = _noop) -> IngestResult:
    from demo.movielens import load_movielens as movielens_frame  # 50 MB package, lazy

    frame = movielens_frame()
    products, customers = movielens_catalog(frame)
    load_catalog(tenant_id, products, customers, progress)
    return load_events(tenant_id, movielens_events(frame), len(frame), progress)


def synthetic_events(chunks) -> Iterator[EventIn]:
    for chunk in chunks:
        columns = zip(
            chunk.event_id.tolist(), chunk.session_id.tolist(), chunk.type_name.tolist(), chunk.customer_id.tolist(),
            chunk.product_id.tolist(), chunk.ts.tolist(), chunk.quantity.tolist(), chunk.price.tolist(),
            strict=True,
        )
        for event_id, session_id, kind, customer, product, ts, quantity, price in columns:
            yield EventIn(
                type=kind, customer_id=customer, product_id=product, event_id=event_id, session_id=session_id,
                timestamp=dt.datetime.fromtimestamp(ts, dt.UTC),
                quantity=quantity or None, price=None if math.isnan(price) else price,
            )


def load_synthetic(tenant_id: int, spec, progress: Progress = _noop) -> IngestResult:
    from demo.synthetic import generate_catalog, iter_event_chunks

    catalog = generate_catalog(spec)
    products = list(catalog.iter_product_records())
    customers = [{k: v for k, v in c.items() if k != "created_at"} for c in catalog.iter_customer_records()]
    load_catalog(tenant_id, products, customers, progress)
    return load_events(tenant_id, synthetic_events(iter_event_chunks(spec, catalog)), spec.n_events, progress)
