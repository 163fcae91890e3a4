"""The answer cache's one-round-trip lookup composes, in Redis, the key the rest of the code writes under."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache

from serving import cache, catalog_changes
from serving.registry_cache import active_version_id
from tests.factories import TenantFactory
from training.registry.lifecycle import active_version_cache_key

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the one-round-trip lookup is a Redis script"),
]
SHAPE = {"k": 10, "exclude": (), "category": None}


@pytest.fixture
def tenant(settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 600
    return TenantFactory()


@pytest.mark.parametrize("customer", ["c-1", None])
def test_the_lookup_finds_what_was_stored_under_answer_key(tenant, customer):
    active_version_id(tenant.pk)  # the active version (none) is cached, as after any request
    key = cache.answer_key(tenant.pk, "recommend", SHAPE, customer=customer)
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer=customer)[:2] == (key, None)

    cache.set_answer(key, {"items": [{"id": "p1"}]})
    cache.answers_written()
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer=customer)[:2] == (key, {"items": [{"id": "p1"}]})
    assert cache.lookup_answer(tenant.pk, "recommend", {**SHAPE, "k": 11}, customer=customer)[1] is None
    assert cache.lookup_answer(tenant.pk, "popular", SHAPE, customer=customer)[1] is None
    assert cache.lookup_answer(TenantFactory().pk, "recommend", SHAPE, customer=customer)[1] is None


def test_an_event_a_rule_change_and_an_activation_each_make_the_answer_unreachable(tenant):
    active_version_id(tenant.pk)
    key = cache.answer_key(tenant.pk, "recommend", SHAPE, customer="c-1")
    cache.set_answer(key, {"items": []})
    cache.answers_written()

    cache.bump_customer_generation(tenant.pk, ["c-2"])
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")[1] == {"items": []}
    cache.bump_customer_generation(tenant.pk, ["c-1"])
    after_event, missed, _ = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert missed is None and after_event != key
    assert after_event == cache.answer_key(tenant.pk, "recommend", SHAPE, customer="c-1")

    cache.set_answer(after_event, {"items": []})
    cache.bump_rules_generation(tenant.pk)
    after_rule, missed, _ = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert missed is None and after_rule not in (key, after_event)

    cache.set_answer(after_rule, {"items": []})
    django_cache.set(active_version_cache_key(tenant.pk), 12345, 60)  # what activation leads to
    after_activation, missed, _ = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert missed is None and after_activation.endswith(":12345")


def test_an_expired_active_version_is_read_from_the_database(tenant):
    django_cache.delete(active_version_cache_key(tenant.pk))
    key, answer, seen = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert answer is None and key.endswith(":0") and seen is None
    assert django_cache.get(active_version_cache_key(tenant.pk)) == 0  # refilled for the next request


def test_a_redis_that_lost_the_script_gets_it_again(tenant):
    from django_redis import get_redis_connection

    active_version_id(tenant.pk)
    key = cache.answer_key(tenant.pk, "recommend", SHAPE, customer="c-1")
    cache.set_answer(key, {"items": []})
    cache.answers_written()
    get_redis_connection("default").script_flush()  # as after a restart of Redis
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")[:2] == (key, {"items": []})
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")[:2] == (key, {"items": []})


def test_a_miss_is_computed_with_the_rules_generation_and_version_its_lookup_read(tenant):
    other = TenantFactory()
    django_cache.set(active_version_cache_key(tenant.pk), 4242, 60)
    cache.bump_rules_generation(tenant.pk)
    catalog_changes.publish_changes(tenant.pk, [1, 2])
    key, answer, seen = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    catalog_seq = catalog_changes.current_seq(tenant.pk)
    assert catalog_seq > 0 and catalog_changes.current_seq(other.pk) == 0
    assert answer is None and seen == cache.Seen(4242, cache.rules_generation(tenant.pk), catalog_seq)
    assert key.endswith(f":{seen.rules_generation}:{key.split(':')[-2]}:4242")

    # A rule write and an activation land between the lookup and the computation: the computation
    # still uses what the key was composed from, so the answer stored under it is that version's.
    cache.bump_rules_generation(tenant.pk)
    django_cache.set(active_version_cache_key(tenant.pk), 4343, 60)
    with cache.computing_with(tenant.pk, seen):
        assert cache.rules_generation(tenant.pk) == seen.rules_generation
        assert active_version_id(tenant.pk) == 4242
        assert cache.rules_generation(other.pk) == 0 and active_version_id(other.pk) is None  # its own
    assert cache.rules_generation(tenant.pk) > seen.rules_generation
    assert active_version_id(tenant.pk) == 4343


def _pending_bump(tenant_id: int, customer: str) -> list:
    from django_redis import get_redis_connection

    pipe = get_redis_connection("default").pipeline(transaction=False)
    cache.queue_pending_bump(pipe, tenant_id, customer)
    return pipe.execute()


def test_while_a_customers_event_is_being_stored_nothing_computed_is_stored(tenant):
    from django_redis import get_redis_connection

    active_version_id(tenant.pk)
    before = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert cache.pending_bump_applied(_pending_bump(tenant.pk, "c-1"))

    during = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert during.key is None and during.answer is None  # compute, but store nothing
    assert cache.storable_answer_key(tenant.pk, "recommend", SHAPE, customer="c-1") is None
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-2").key is not None  # only c-1's
    new_key = cache.answer_key(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert new_key != before.key  # the generation changed with the marker

    # The marker expires by itself: then the new generation's answers are stored and found as usual.
    redis = get_redis_connection("default")
    markers = [k for k in redis.keys("*recs-gen*:pending")]
    assert len(markers) == 1 and 0 < redis.pttl(markers[0]) <= cache.PENDING_MS
    redis.delete(markers[0])
    after = cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1")
    assert after.key == new_key == cache.storable_answer_key(tenant.pk, "recommend", SHAPE, customer="c-1")
    cache.set_answer(after.key, {"items": []})
    cache.answers_written()
    assert cache.lookup_answer(tenant.pk, "recommend", SHAPE, customer="c-1").answer == {"items": []}


def test_a_pending_bump_covers_a_commit_only_well_inside_its_markers_life(monkeypatch):
    now = 1000.0
    monkeypatch.setattr(cache.time, "monotonic", lambda: now)
    assert cache.pending_bump_covers(now - 0.001)
    assert not cache.pending_bump_covers(now - cache.PENDING_MS / 1000 / 2)
    assert not cache.pending_bump_applied(None) and not cache.pending_bump_applied([True, ValueError()])
