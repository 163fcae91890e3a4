"""A real Celery worker for the tests that need one: the `celery_worker` fixture.

    @pytest.mark.celery_worker
    @pytest.mark.django_db(transaction=True)   # the worker must see committed rows
    def test_something(celery_worker, ...):
        ...  # tasks enqueued here run in the worker process

One worker per test session (`celery -A config worker -P solo`), started on first use against the test
database pytest-django created and the test Redis, stopped (warm shutdown) before that database is
dropped. The function-scoped fixture turns eager execution off for its test and makes sure the broker
still routes to the worker's queues: the suite's autouse cache fixture runs FLUSHDB on the test Redis
(cache and broker share it), which also deletes kombu's queue bindings.

Loaded from tests/conftest.py with `pytest_plugins = ["tests.celery_worker"]`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config.celery import app as celery_app

QUEUES = ("default", "ingest", "webhooks", "training", "serving")
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
REPO = Path(__file__).resolve().parents[1]


def url_of_test_database(name: str) -> str:
    """DATABASE_URL of this process with the database replaced by the test database."""
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()


def _purge_broker() -> None:
    """Drop messages a previous session left (their job ids could match this session's new rows)."""
    import redis

    client = redis.Redis.from_url(celery_app.conf.broker_url)
    try:
        keys = [key for name in QUEUES for key in client.scan_iter(match=f"{name}*")]
        client.delete(*keys, "unacked", "unacked_index", "unacked_mutex")
    finally:
        client.close()


def _declare_queues() -> None:
    """(Re)create the exchanges, queues and bindings the worker consumes from."""
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in QUEUES:
            celery_app.amqp.queues[name].bind(channel).declare()


def _log_tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _wait_until_ready(process: subprocess.Popen, nodename: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{_log_tail(log)}")
        replies = celery_app.control.ping(destination=[nodename], timeout=1.0)
        if any(nodename in reply for reply in replies):
            return
    pytest.fail(f"the Celery worker did not answer a ping within {START_TIMEOUT_S} s:\n{_log_tail(log)}")


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory, scratch_dirs):
    """The worker process, against the test database (depends on django_db_setup, so it stops first)."""
    from django.conf import settings
    from django.db import connection

    broker = celery_app.conf.broker_url or ""
    if not broker.startswith(("redis://", "rediss://")):
        pytest.skip("a real Celery worker needs the Redis broker (set REDIS_URL)")
    with django_db_blocker.unblock():
        database = connection.settings_dict["NAME"]
    nodename = f"recsvc-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url_of_test_database(database),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        **scratch_dirs,  # the suite's scratch folders, not the checkout's var/ (tests/conftest.py)
    }
    _purge_broker()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(QUEUES), "-P", "solo",
                "--concurrency", "1", "-n", nodename, "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "INFO",
            ],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until_ready(process, nodename, log)
        process.log_path = log
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task at hand, closes its connections
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def celery_worker(celery_worker_process):
    """Tasks of this test run in the real worker. Autouse fixtures run first, so this overrides the
    suite's eager default (and re-routes after its cache flush)."""
    _declare_queues()
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield celery_worker_process
    finally:
        celery_app.conf.task_always_eager = previous
