"""`manage.py demo` loads the real MovieLens data and a synthetic shop into their own tenants."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from recs.models import Customer, Event, Product
from tenants.api_keys import authenticate_api_key
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_demo_loads_both_tenants_and_is_idempotent(all_tenants, capsys):
    call_command("demo", "--no-serve", "--no-train", "--synthetic-events", "3000")
    movielens = Tenant.objects.get(slug="movielens")
    assert Event.objects.for_tenant(movielens).count() == 100_004
    assert Product.objects.for_tenant(movielens).count() == 9_066
    assert Customer.objects.for_tenant(movielens).count() == 671
    toy_story = Product.objects.for_tenant(movielens).get(external_id="movie-1")
    assert toy_story.title.startswith("Toy Story") and "Animation" in toy_story.tags
    shop = Tenant.objects.get(slug="synthetic-shop")
    assert Event.objects.for_tenant(shop).count() > 2_000
    out = capsys.readouterr().out
    keys = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("API key for")]
    assert {authenticate_api_key(k).tenant.slug for k in keys} == {"movielens", "synthetic-shop"}

    call_command("demo", "--no-serve", "--no-train")
    assert Event.objects.for_tenant(movielens).count() == 100_004
