"""`manage.py demo` loads the real MovieLens data and a synthetic shop into their own tenants, as a shop owner
should meet them: titles read as titles, a film is found under each of its genres, and the timelines end
just before the demo started."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db.models import Max, Min
from rest_framework.test import APIClient

from demo.load import SHIFT_MARGIN
from recs.management.commands.demo import Command as DemoCommand
from recs.models import Customer, Event, Product
from tenants.api_keys import authenticate_api_key
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

# The demo's clock, fixed (after both data sets end; ingestion refuses events from the future): nothing
# below depends on today's date.
NOW = dt.datetime(2025, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def _ids(client: APIClient, path: str, params: dict) -> list[str]:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_demo_loads_both_tenants_and_is_idempotent(all_tenants, capsys):
    call_command(DemoCommand(now=lambda: NOW), "--no-serve", "--no-train", "--synthetic-events", "3000")
    movielens = Tenant.objects.get(slug="movielens")
    products = Product.objects.for_tenant(movielens)
    assert Event.objects.for_tenant(movielens).count() == 100_004
    assert products.count() == 9_066
    assert Customer.objects.for_tenant(movielens).count() == 671
    toy_story = products.get(external_id="movie-1")
    assert toy_story.title == "Toy Story" and "Animation" in toy_story.tags

    # Titles: the article in front, in the main title and the original one; no "nan" for a missing title.
    assert products.get(external_id="movie-2048").title == "The Great Mouse Detective"
    assert products.get(external_id="movie-1172").title == "Cinema Paradiso (Nuovo cinema Paradiso)"
    assert products.filter(title__regex=r", (The|A|An)( \(|$)").count() == 0
    assert not products.filter(title__iexact="nan").exists()
    assert products.get(external_id="movie-162376").title == "Movie 162376"

    # Every genre is an element of the path, so every category filter finds the film under each of them.
    assert toy_story.category_path[0] == "Movies"
    assert set(toy_story.category_path[1:]) == {"Adventure", "Animation", "Children", "Comedy", "Fantasy"}
    assert all(len(p) <= 10 for p in products.values_list("category_path", flat=True))

    out = capsys.readouterr().out
    keys = dict(line.removeprefix("API key for ").split(" (shown once): ") for line in out.splitlines()
                if line.startswith("API key for"))
    assert {authenticate_api_key(k).tenant.slug for k in keys.values()} == {"movielens", "synthetic-shop"}
    assert "Lost a key?" in out and "http://127.0.0.1:8000/keys" in out
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys['movielens']}")
    comedy = {"category": "Comedy", "k": 100}
    assert "movie-1" in _ids(client, "/v1/popular", comedy)
    assert "movie-1" in _ids(client, "/v1/recommendations", {**comedy, "customer_id": "user-4"})

    # Each shop's timeline ends just before the demo started, moved by one offset; "first seen" is no later
    # than a customer's first event.
    assert f"the last event is at {NOW - SHIFT_MARGIN:%Y-%m-%d %H:%M} UTC" in out
    shop = Tenant.objects.get(slug="synthetic-shop")
    for tenant in (movielens, shop):
        events = Event.objects.for_tenant(tenant)
        last = events.aggregate(last=Max("ts"))["last"]
        assert NOW - dt.timedelta(hours=1) < last <= NOW - SHIFT_MARGIN
        assert events.filter(ts__gte=NOW - dt.timedelta(days=30)).count() > 100
        first_events = dict(events.values("customer_id").annotate(first=Min("ts")).values_list("customer_id", "first"))
        for pk, created in Customer.objects.for_tenant(tenant).values_list("pk", "created_at"):
            assert pk not in first_events or created <= first_events[pk]
    assert Event.objects.for_tenant(movielens).aggregate(last=Max("ts"))["last"] == NOW - SHIFT_MARGIN
    ratings = Event.objects.for_tenant(movielens)
    user_1 = Customer.objects.for_tenant(movielens).get(external_id="user-1")
    assert user_1.created_at == ratings.filter(customer=user_1).aggregate(first=Min("ts"))["first"]
    # One offset: the ids keep the data's own times, and every rating moved by the same amount.
    offsets = {
        e.ts - dt.datetime.fromtimestamp(int(e.event_id.rsplit("-", 1)[1]), dt.UTC) for e in ratings.order_by("?")[:50]
    }
    assert len(offsets) == 1 and f"moved forward {next(iter(offsets)).total_seconds() / 86_400:,.1f} days" in out

    call_command("demo", "--no-serve", "--no-train")
    assert Event.objects.for_tenant(movielens).count() == 100_004
