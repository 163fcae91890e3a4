"""The web server as deployed (config/gunicorn.py): its shape (with Redis, and for the embedded default's
per-process cache), its fail-fast settings, and a real server started from it answering one request
after another on the same worker."""

from __future__ import annotations

import http.client
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import ImproperlyConfiguredEnv
from tests.bench import _load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gunicorn.py"


REDIS = "redis://127.0.0.1:6379/0"


def _config(monkeypatch, **env: str) -> dict:
    for name in ("RECSVC_WEB_WORKERS", "RECSVC_WEB_BIND", "RECSVC_WEB_TIMEOUT", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONFIG))


def test_the_deployed_server_runs_one_single_threaded_worker_more_than_the_cores(monkeypatch):
    config = _config(monkeypatch, REDIS_URL=REDIS)
    assert config["wsgi_app"] == "config.wsgi:application"
    assert config["worker_class"] == "sync"
    assert config["workers"] == (os.cpu_count() or 1) + 1
    assert "threads" not in config  # a sync worker given threads becomes a gthread one


def test_the_embedded_default_is_one_threaded_process_so_its_local_memory_cache_stays_coherent(monkeypatch):
    config = _config(monkeypatch)  # no REDIS_URL: Django's cache lives in each process (config/settings.py)
    assert (config["worker_class"], config["workers"], config["threads"]) == ("gthread", 1, 4)
    assert _config(monkeypatch, RECSVC_WEB_WORKERS="3")["workers"] == 3  # an explicit size still wins


def test_the_environment_sizes_the_server(monkeypatch):
    assert _config(monkeypatch, REDIS_URL=REDIS)["timeout"] == 120
    config = _config(monkeypatch, REDIS_URL=REDIS, RECSVC_WEB_WORKERS="8", RECSVC_WEB_BIND="0.0.0.0:9000",
                     RECSVC_WEB_TIMEOUT="600")
    assert (config["workers"], config["bind"], config["timeout"]) == (8, "0.0.0.0:9000", 600)


@pytest.mark.parametrize("name, value", [("RECSVC_WEB_WORKERS", "two"), ("RECSVC_WEB_WORKERS", "0"),
                                         ("RECSVC_WEB_WORKERS", "-1"), ("RECSVC_WEB_TIMEOUT", "5")])
def test_a_malformed_size_stops_the_server_before_it_starts(monkeypatch, name, value):
    with pytest.raises(ImproperlyConfiguredEnv, match=name):
        _config(monkeypatch, **{name: value})


def test_a_server_started_from_the_configuration_answers_request_after_request():
    port = _load.free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # The deployed shape (sync) is the one with a shared cache; /healthz itself never reaches Redis.
    env = {**os.environ, "RECSVC_WEB_WORKERS": "1", "RECSVC_WEB_BIND": f"127.0.0.1:{port}",
           "REDIS_URL": os.environ.get("REDIS_URL") or REDIS}
    server = subprocess.Popen([str(gunicorn), "-c", str(CONFIG), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        _load.wait_until_healthy(_load.Server("127.0.0.1", port, server, "gunicorn"), timeout_s=90)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        assert (first.status, first.read()) == (200, b'{"ok": true}')
        assert first.will_close  # a sync worker: the proxy in front keeps its clients' connections alive
        for _ in range(3):  # the one worker is free again after each answer
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
