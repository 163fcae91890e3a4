"""Erasure finds a customer's or a shop's cached recommendations by key prefix (recs/answer_keys.py),
in Redis and in the embedded default's local-memory cache, and never widens to another customer or shop."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from serving.answer_keys import customer_prefix, forget_customers, forget_tenant

LOCAL = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "test-forget"}}


@pytest.fixture(params=["configured", "local-memory"])
def cache_backend(request, settings):
    if request.param == "local-memory":
        settings.CACHES = LOCAL
        cache.clear()  # the local-memory store outlives a test (tests/conftest.py clears the configured one)
    return request.param


def test_forgetting_removes_only_that_customers_then_that_shops_answers(cache_backend):
    theirs, other = customer_prefix(1, "a") + "home:7", customer_prefix(1, "b") + "home:7"
    shop_12 = customer_prefix(12, "a") + "home:7"  # "recs:v1:1:" must not reach shop 12's keys
    cache.set_many({theirs: ["x"], other: ["y"], shop_12: ["z"], "unrelated": 1})

    assert forget_customers(1, ["a", "never-seen"]) == 1
    assert (cache.get(theirs), cache.get(other), cache.get(shop_12), cache.get("unrelated")) == (None, ["y"], ["z"], 1)
    assert forget_tenant(1) == 1
    assert (cache.get(other), cache.get(shop_12), cache.get("unrelated")) == (None, ["z"], 1)
