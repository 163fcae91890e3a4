"""Start-up refusals of unsafe deployments: a transaction or statement pooler in front of PostgreSQL (ADR
0013: the tenant setting is per session and remembered per process, so such a pooler could run a statement
on a server connection holding another client's tenant) and a Redis beyond loopback without a password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings


def _start(pool_mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECSVC_DB_POOL_MODE": pool_mode, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_a_transaction_or_statement_pooler_is_refused_at_start_up(mode):
    done = _start(mode)
    assert done.returncode != 0
    assert "only session pooling" in done.stderr


def test_session_pooling_starts():
    done = _start("session")
    assert done.returncode == 0, done.stderr[-2000:]


def _start_with(**env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=full, cwd=settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)


def test_a_redis_beyond_loopback_without_a_password_is_refused():
    done = _start_with(REDIS_URL="redis://cache.internal:6379/0")
    assert done.returncode != 0 and "without a password" in done.stderr
    assert _start_with(REDIS_URL="redis://:s3cret@cache.internal:6379/0").returncode == 0
