"""Load the demo tenants: MovieLens (real ratings) and a synthetic shop. Idempotent: re-running stores
nothing twice (stable event ids, upserts by external id).

Both data sets are old (MovieLens ends in 2016, the synthetic shop in 2024). Given `now`, a loader moves a
shop's whole timeline by one constant offset so that its last event falls just before `now`: charts of
the last 30 days, "last seen" and popularity windows then look like a live shop. Intervals between
events are unchanged, and event ids keep the original times, so they stay stable. Without `now` the
times are the data's own (tests and benchmarks that need fixed dates).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce, Least

from demo.titles import display_title
from recs.ingest.catalog import upsert_customers, upsert_products
from recs.ingest.errors import IngestResult
from recs.ingest.event_schema import EventIn
from recs.ingest.events import ingest_events
from recs.models import Customer, Event

Progress = Callable[[str, int, int], None]
EVENT_BATCH = 10_000
CATALOG_BATCH = 1_000
# How long before `now` a shifted timeline ends: the last event is "a minute ago".
SHIFT_MARGIN = dt.timedelta(minutes=1)
MAX_CATEGORY_PATH = 10  # the API's limit (recs/ingest/catalog_schema.py): the catalog stays re-sendable


@dataclass(frozen=True)
class Loaded:
    result: IngestResult
    shift: dt.timedelta  # added to every timestamp of the data (zero without `now`)
    last_event: dt.datetime | None  # the latest event as stored (after the shift)


def timeline_shift(last_event: dt.datetime, now: dt.datetime | None) -> dt.timedelta:
    """The one offset that moves a shop's timeline so its last event lands SHIFT_MARGIN before `now`, in
    whole seconds; zero without `now`."""
    if now is None:
        return dt.timedelta(0)
    return dt.timedelta(seconds=math.floor((now - SHIFT_MARGIN - last_event).total_seconds()))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _noop(stage: str, done: int, total: int) -> None:
    pass


def _genres(genres) -> list[str]:
    return [g for g in genres.split("|") if g and g != "(no genres listed)"] if isinstance(genres, str) else []


def movielens_catalog(frame) -> tuple[list[dict], list[dict]]:
    """Products and customers of the MovieLens shop.

    A film belongs to every one of its genres: category_path is "Movies" and then all its genres, the
    most common genre first. Every consumer of categories (the `category` filter of recommendations,
    popular and products, the rules' include/exclude_categories) matches any element of the path, so a
    Comedy filter finds Toy Story, whose first genre is Adventure. Common-first reads as general to
    specific: the leaf (the diversity cap's unit) is the film's rarest genre (Animation for Toy Story), and
    the path prefixes training turns into category ids ("Movies > Comedy > Adventure") are shared by
    many films. The paths make about 1,000 prefixes, mostly rare genre combinations; training gives an id
    only to those that enough films carry (training.datasets.min_category_items: 192 of them here).

    Five films have no title in the packaged data (pandas reads the empty field as NaN, which str() made
    "nan"): they are kept, with their ratings, as "Movie <id>"."""
    movies = frame.drop_duplicates("movieId").sort_values("movieId")
    genre_lists = [_genres(g) for g in movies["genres"]]
    frequency = Counter(g for genre_list in genre_lists for g in genre_list)
    products = []
    rows = movies[["movieId", "title", "year"]].itertuples(index=False)
    for (movie_id, title, year), genre_list in zip(rows, genre_lists, strict=True):
        attributes = {"genres": genre_list}
        if isinstance(year, (int, float)) and not math.isnan(year):
            attributes["year"] = int(year)
        by_frequency = sorted(genre_list, key=lambda g: (-frequency[g], g))
        products.append({
            "external_id": f"movie-{movie_id}",
            "title": (display_title(title) if isinstance(title, str) and title.strip() else f"Movie {movie_id}")[:500],
            "category_path": ["Movies", *by_frequency][:MAX_CATEGORY_PATH],
            "tags": genre_list[:50],
            "attributes": attributes,
            "available": True,
        })
    customers = [{"external_id": f"user-{u}", "attributes": {}} for u in sorted(frame["userId"].unique())]
    return products, customers


def movielens_events(frame, shift: dt.timedelta = dt.timedelta(0)) -> Iterator[EventIn]:
    for user, movie, rating, ts in frame[["userId", "movieId", "rating", "timestamp"]].itertuples(index=False):
        yield EventIn(
            type="rating", customer_id=f"user-{user}", product_id=f"movie-{movie}",
            timestamp=dt.datetime.fromtimestamp(int(ts), dt.UTC) + shift, value=float(rating),
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


def date_customers(tenant_id: int, signed_up: dict[str, dt.datetime] | None = None) -> None:
    """A customer's created_at (the dashboard's "first seen") is the data's sign-up time where it has
    one, and never later than the customer's first event; loading would otherwise date everyone today,
    after all their events."""
    customers = Customer.objects.for_tenant(tenant_id)
    if signed_up:
        rows = list(customers.filter(external_id__in=list(signed_up)).only("pk", "external_id"))
        for row in rows:
            row.created_at = signed_up[row.external_id]
        customers.bulk_update(rows, ["created_at"], batch_size=CATALOG_BATCH)
    first = Event.objects.for_tenant(tenant_id).filter(customer_id=OuterRef("pk")).order_by("ts").values("ts")[:1]
    customers.update(created_at=Least(F("created_at"), Coalesce(Subquery(first), F("created_at"))))


def load_movielens(tenant_id: int, progress: Progress = _noop, *, now: dt.datetime | None = None) -> Loaded:
    from demo.movielens import load_movielens as movielens_frame  # 50 MB package, lazy

    frame = movielens_frame()
    last = dt.datetime.fromtimestamp(int(frame["timestamp"].max()), dt.UTC)
    shift = timeline_shift(last, now)
    products, customers = movielens_catalog(frame)
    load_catalog(tenant_id, products, customers, progress)
    result = load_events(tenant_id, movielens_events(frame, shift), len(frame), progress)
    date_customers(tenant_id)
    return Loaded(result, shift, last + shift)


def synthetic_events(chunks, shift: dt.timedelta = dt.timedelta(0)) -> Iterator[EventIn]:
    for chunk in chunks:
        columns = zip(
            chunk.event_id.tolist(), chunk.session_id.tolist(), chunk.type_name.tolist(), chunk.customer_id.tolist(),
            chunk.product_id.tolist(), chunk.ts.tolist(), chunk.quantity.tolist(), chunk.price.tolist(),
            strict=True,
        )
        for event_id, session_id, kind, customer, product, ts, quantity, price in columns:
            yield EventIn(
                type=kind, customer_id=customer, product_id=product, event_id=event_id, session_id=session_id,
                timestamp=dt.datetime.fromtimestamp(ts, dt.UTC) + shift,
                quantity=quantity or None, price=None if math.isnan(price) else price,
            )


def load_synthetic(tenant_id: int, spec, progress: Progress = _noop, *, now: dt.datetime | None = None) -> Loaded:
    """The synthetic shop of `spec`. Its events fall before `spec.end_ts`, which the shift (with `now`)
    puts a minute before `now`; customers keep their generated sign-up times, shifted alike."""
    from demo.synthetic import generate_catalog, iter_event_chunks

    shift = timeline_shift(dt.datetime.fromtimestamp(spec.end_ts, dt.UTC), now)
    catalog = generate_catalog(spec)
    products = list(catalog.iter_product_records())
    customers = [{k: v for k, v in c.items() if k != "created_at"} for c in catalog.iter_customer_records()]
    load_catalog(tenant_id, products, customers, progress)
    result = load_events(
        tenant_id, synthetic_events(iter_event_chunks(spec, catalog), shift), spec.n_events, progress
    )
    signed_up = {
        str(ext): dt.datetime.fromtimestamp(int(ts), dt.UTC) + shift
        for ext, ts in zip(catalog.customers.external_id, catalog.customers.created_at, strict=True)
    }
    date_customers(tenant_id, signed_up)
    last = Event.objects.for_tenant(tenant_id).order_by("-ts").values_list("ts", flat=True).first()
    return Loaded(result, shift, last)
