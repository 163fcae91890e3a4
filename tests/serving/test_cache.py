"""The answer cache: an answer is served only while the generations it was computed under are current."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django_redis import get_redis_connection
from redis.crc import key_slot

from serving import cache
from serving.registry_cache import active_version_id
from tests.factories import TenantFactory
from training.registry.lifecycle import active_version_cache_key

pytestmark = pytest.mark.django_db
SHAPE = {"k": 10, "exclude": (), "category": None}


@pytest.fixture
def tenant(settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 600
    return TenantFactory()


@pytest.mark.parametrize("customer", ["c-1", None])
def test_a_stored_answer_is_found_by_the_same_request_only(tenant, customer):
    first = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer=customer)
    assert first.answer is None and first.stamp == cache.Stamp(0, 0, None)
    assert cache.store_answer(first, {"items": [{"id": "p1"}]})

    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer=customer).answer == {"items": [{"id": "p1"}]}
    assert cache.lookup_answer(tenant.pk, "recommend", {**SHAPE, "k": 11}, customer=customer).answer is None
    assert cache.lookup_answer(tenant.pk, "popular", SHAPE, customer=customer).answer is None
    assert cache.lookup_answer(TenantFactory().pk, "recommend", SHAPE, customer=customer).answer is None
    other_customer = "c-2" if customer else "c-1"
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer=other_customer).answer is None


def test_an_event_a_rule_change_and_an_activation_each_make_the_answer_stale(tenant):
    def stored_then_found() -> cache.Lookup:
        lookup = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
        cache.store_answer(lookup, {"items": []})
        assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer == {"items": []}
        return lookup

    before = stored_then_found()
    cache.bump_customer_generation(tenant.pk, ["c-2"])
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer == {"items": []}
    cache.bump_customer_generation(tenant.pk, ["c-1"])
    after_event = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert after_event.answer is None and after_event.key == before.key
    assert after_event.stamp.customer_generation > before.stamp.customer_generation

    stored_then_found()
    cache.bump_rules_generation(tenant.pk)
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer is None

    stored_then_found()
    django_cache.set(active_version_cache_key(tenant.pk), 12345, 60)  # what activation leads to
    after_activation = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert after_activation.answer is None and after_activation.stamp.model_version == 12345


def test_an_answer_computed_while_an_event_commits_is_never_served_after_it(tenant):
    """The stamp is read before computing: a bump landing between the lookup and the store leaves the stored
    answer with the old stamp, whatever the timing."""
    lookup = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    cache.bump_customer_generation(tenant.pk, ["c-1"])  # the event commits while the answer is computed
    cache.store_answer(lookup, {"items": [{"id": "bought"}]})
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer is None


def test_an_expired_active_version_is_read_from_the_database(tenant):
    django_cache.delete(active_version_cache_key(tenant.pk))
    lookup = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert lookup.answer is None and lookup.stamp.model_version is None
    assert django_cache.get(active_version_cache_key(tenant.pk)) == 0  # refilled for the next request
    assert active_version_id(tenant.pk) is None


def test_nothing_is_stored_without_a_ttl(tenant, settings):
    lookup = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert not cache.store_answer(lookup, {"items": []}, max_seconds=0.5)
    settings.RECSVC_RECS_CACHE_SECONDS = 0
    assert not cache.store_answer(lookup, {"items": []})
    settings.RECSVC_RECS_CACHE_SECONDS = 600
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer is None


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="hash tags are a Redis Cluster matter")
def test_every_key_of_a_lookup_shares_the_tenants_cluster_slot(tenant):
    lookup = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    cache.store_answer(lookup, {"items": []})
    cache.bump_customer_generation(tenant.pk, ["c-1", "c-2"])
    cache.bump_rules_generation(tenant.pk)
    django_cache.set(active_version_cache_key(tenant.pk), 7, 60)
    keys = get_redis_connection("default").keys(django_cache.make_key(f"recs:{{{tenant.pk}}}:*"))
    assert len(keys) == 5  # the answer, two customers' generations, the rules generation, the version
    assert len({key_slot(k) for k in keys}) == 1
