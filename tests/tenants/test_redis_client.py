"""The hot paths' Redis helpers (tenants.redis_client), against the real Redis: one round trip gives each
command's reply in order, an error reply stays in its place without desyncing the pooled connection, a
connection Redis closed is replaced, writes without replies are applied in order and visible after the
barrier (also after their connection was killed), and the client follows the CACHES setting."""

from __future__ import annotations

import hashlib

import pytest
import redis
from django.conf import settings as django_settings
from redis.exceptions import NoScriptError, ResponseError

from tenants.redis_client import RoundTrip, raw_redis, replyless_writer

pytestmark = pytest.mark.skipif(
    "redis" not in django_settings.CACHES["default"]["BACKEND"], reason="needs Redis (make test sets REDIS_URL)"
)

ECHO = "return {KEYS[1], ARGV[1]}"
FAILS = "return redis.error_reply('boom')"


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


@pytest.fixture
def client():
    redis = raw_redis()
    redis.script_load(ECHO)
    redis.script_load(FAILS)
    yield redis
    redis.delete("test-rt:a", "test-rt:b", "test-rl:n", "test-rl:s")


def test_replies_come_back_in_order_with_set_as_true(client):
    trip = RoundTrip().set("test-rt:a", 7, ex=60).evalsha(_sha(ECHO), 1, "k", "v").set("test-rt:b", "x", px=60_000)
    assert trip.execute(client) == [True, [b"k", b"v"], True]
    assert client.get("test-rt:a") == b"7" and 0 < client.ttl("test-rt:a") <= 60
    assert 0 < client.pttl("test-rt:b") <= 60_000


def test_an_error_reply_stays_in_its_place_and_the_connection_stays_usable(client):
    replies = RoundTrip().evalsha(_sha(FAILS), 0).evalsha("0" * 40, 0).evalsha(_sha(ECHO), 1, "k", "v").execute(client)
    assert isinstance(replies[0], ResponseError) and "boom" in str(replies[0])
    assert isinstance(replies[1], NoScriptError)
    assert replies[2] == [b"k", b"v"]
    # Every reply was read: the next round trip on the pooled connection gets its own replies.
    assert RoundTrip().evalsha(_sha(ECHO), 1, "next", "1").execute(client) == [[b"next", b"1"]]


def test_a_connection_that_redis_closed_is_replaced(client):
    pool = client.connection_pool
    connection = pool.get_connection()
    connection.send_command("CLIENT", "ID")
    pooled_id = connection.read_response()
    pool.release(connection)
    kwargs = pool.connection_kwargs
    other = redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))  # outside the pool
    try:
        assert other.client_kill_filter(_id=pooled_id) == 1  # as a Redis restart or timeout would
    finally:
        other.close()
    assert RoundTrip().evalsha(_sha(ECHO), 1, "k", "again").execute(client) == [[b"k", b"again"]]


def test_writes_without_replies_are_applied_in_order_and_visible_after_the_barrier(client):
    writer = replyless_writer()
    assert writer is replyless_writer() and writer.client is client
    for _ in range(3):
        assert writer.send("INCR", "test-rl:n")
    assert writer.send("SET", "test-rl:s", "v", "EX", 60)
    writer.barrier()
    assert client.get("test-rl:n") == b"3" and client.get("test-rl:s") == b"v" and 0 < client.ttl("test-rl:s") <= 60
    # Redis sent no reply for them: had it, the barrier would have read INCR's ":1" and raised.
    assert writer.send("INCR", "test-rl:n")
    writer.barrier()
    assert client.get("test-rl:n") == b"4"


def _client_id(client, connection) -> int:
    host, port = connection._sock.getsockname()[:2]
    return next(int(c["id"]) for c in client.client_list() if c["addr"] == f"{host}:{port}")


def test_a_killed_writer_connection_is_made_again_with_replies_off(client):
    writer = replyless_writer()
    assert writer.send("INCR", "test-rl:n")
    writer.barrier()
    killed = _client_id(client, writer._connection)
    assert client.client_kill_filter(_id=killed) == 1  # as a Redis restart or timeout would
    with pytest.raises(redis.ConnectionError):
        writer.barrier()  # what was sent since may be lost: the barrier says so
    for _ in range(3):  # the first write after the kill is made on a new connection
        assert writer.send("INCR", "test-rl:n")
    writer.barrier()  # replies are off on the new connection too (else this reads ":2" and raises)
    assert client.get("test-rl:n") == b"4" and _client_id(client, writer._connection) != killed


def test_nothing_to_send_costs_no_round_trip(client):
    assert RoundTrip().execute(client) == []


def test_the_client_follows_the_caches_setting(settings):
    assert raw_redis() is raw_redis()  # one client for every caller (django-redis keeps one per cache too)
    down = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert raw_redis() is None and replyless_writer() is None
    settings.CACHES = {"default": down}
    assert raw_redis().connection_pool.connection_kwargs["port"] == 1
