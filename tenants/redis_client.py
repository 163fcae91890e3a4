"""The raw Redis client behind Django's cache, one round trip of commands, and writes without replies, for
the hot paths."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

_NOT_LOOKED_UP = object()
_client: Any = _NOT_LOOKED_UP


def raw_redis() -> Any | None:
    """The `default` cache's Redis client, or None under the embedded default's local-memory cache.

    Looked up once per process: reaching it through Django's per-thread cache handler cost about 6 us,
    three times per cached recommendation. One client serves every thread (its connection pool is
    thread-safe, and django-redis shares that pool between the threads' cache objects anyway)."""
    global _client
    if _client is _NOT_LOOKED_UP:
        try:
            from django_redis import get_redis_connection

            _client = get_redis_connection("default")
        except (ImportError, NotImplementedError):
            _client = None
    return _client


@receiver(setting_changed)
def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests swap CACHES (override_settings); a running service never does."""
    global _client, _writer
    if setting == "CACHES":
        _client = _NOT_LOOKED_UP
        if _writer is not None:
            _writer.close()
        _writer = None


class RoundTrip:
    """Commands written to Redis at once, their replies read in order: what redis-py's non-transactional
    pipeline does, on its own connection API (pack_commands, send_packed_command, read_response).

    Why not the pipeline: redis-py 8's bookkeeping around it (command stack, retry wrapper, metrics
    hooks, response callbacks, reset) cost 79 us of CPU for a round trip of two scripts, against 45 us
    here: in process, a cached recommendation went from 414 to 385 us. The scripts that go through here
    need no response callback: their replies are used as Redis sends them.

    An error reply (NOSCRIPT, a script error) is returned in its place, as an exception instance; a
    connection that fails raises (the callers then degrade, as they did with the pipeline)."""

    __slots__ = ("_ok_replies", "commands")

    def __init__(self) -> None:
        self.commands: list[tuple] = []
        self._ok_replies: set[int] = set()  # positions of commands whose "OK" is returned as True

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> RoundTrip:
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))
        return self

    def set(self, name: str, value: Any, *, ex: int | None = None, px: int | None = None) -> RoundTrip:
        """SET, replying True when set (as redis-py's `set`)."""
        command: tuple = ("SET", name, value)
        if ex is not None:
            command += ("EX", ex)
        if px is not None:
            command += ("PX", px)
        self._ok_replies.add(len(self.commands))
        self.commands.append(command)
        return self

    def execute(self, client: Any) -> list[Any]:
        if not self.commands:
            return []
        pool = client.connection_pool
        connection = pool.get_connection()  # the pool replaces a connection Redis has closed
        try:
            connection.send_packed_command(connection.pack_commands(self.commands))
            replies = [self._reply(connection) for _ in self.commands]
        except BaseException:
            connection.disconnect()  # replies may be left unread: the connection cannot be reused
            raise
        finally:
            pool.release(connection)
        for at in self._ok_replies:
            if replies[at] == b"OK":
                replies[at] = True
        return replies

    @staticmethod
    def _reply(connection: Any) -> Any:
        try:
            return connection.read_response()
        except ResponseError as error:
            return error


class ReplylessWriter:
    """Commands written to Redis without waiting for their replies, on one connection of this process in
    CLIENT REPLY OFF mode (Redis then sends none).

    For writes whose outcome the caller would not act on: a computed answer stored in the cache. Waiting
    for Redis's "OK" cost the worker a blocking read and the context switches around it, about 100 us of
    CPU in a tight loop and 200-270 us inside an uncached answer on the busy 2-core machine, against 16 us
    to write the command (tight loop). Redis applies a connection's commands in order, so a write is
    visible to other connections moments later; a reader that must see it first calls `barrier()`. A write
    that fails (Redis down, the connection dropped) is lost, which for a cache is a later miss; the
    connection is made anew on the next write, and turns replies off again on every (re)connect."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()  # one connection: gthread workers' threads take turns
        self._pid = os.getpid()
        self._connection: Any = None

    def _reply_off(self, connection: Any) -> None:
        # A connect callback of redis-py (a method, kept as a weak reference): after every (re)connect.
        connection.send_command("CLIENT", "REPLY", "OFF", check_health=False)

    def _connected(self) -> Any:
        if self._pid != os.getpid():  # a forked child must not write on its parent's socket
            self._pid, self._connection = os.getpid(), None
        if self._connection is None:
            connection = self.client.connection_pool.make_connection()
            connection.register_connect_callback(self._reply_off)
            self._connection = connection
        return self._connection

    def send(self, *command: Any) -> bool:
        """Write one command; False when it could not be written (it is then lost)."""
        with self._lock:
            try:
                connection = self._connected()
                connection.send_packed_command(connection.pack_command(*command), check_health=False)
                return True
            except Exception as exc:
                log.warning("Redis write without reply lost: %s", exc)
                self._drop()
                return False

    def barrier(self) -> None:
        """Return once Redis has applied every command this writer sent (one round trip: replies on, PING,
        replies off). Raises if the connection failed (what it sent may be lost)."""
        with self._lock:
            if self._connection is None or self._pid != os.getpid():
                return
            connection = self._connection
            try:
                connection.send_packed_command(connection.pack_commands(
                    [("CLIENT", "REPLY", "ON"), ("PING",), ("CLIENT", "REPLY", "OFF")]), check_health=False)
                replies = (connection.read_response(), connection.read_response())
            except Exception:
                self._drop()
                raise
            if [r.decode() if isinstance(r, bytes) else r for r in replies] != ["OK", "PONG"]:
                self._drop()  # replies this connection should never have had: do not trust it
                raise RuntimeError(f"unexpected replies {replies!r} on the reply-less connection")

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.disconnect()
            finally:
                self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop()


_writer: ReplylessWriter | None = None
_writer_guard = threading.Lock()


def replyless_writer() -> ReplylessWriter | None:
    """This process's writer on the cache's Redis (None under the local-memory cache)."""
    global _writer
    client = raw_redis()
    if client is None:
        return None
    writer = _writer
    if writer is None or writer.client is not client:
        with _writer_guard:
            if _writer is None or _writer.client is not client:
                _writer = ReplylessWriter(client)
            writer = _writer
    return writer
