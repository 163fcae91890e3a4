"""In production shape (PostgreSQL and Redis configured, DEBUG off) the service is HTTPS-only: Django's
deployment checks pass with no warning, sessions last hours not weeks, and the health probes still answer
plain HTTP from inside the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DATABASE_URL": "postgres://recsvc@127.0.0.1:5432/recsvc",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_ALLOWED_HOSTS": "recs.example.com",
}
UNSET = ("RECSVC_HTTPS_ONLY", "DJANGO_DEBUG", "RECSVC_HSTS_SECONDS", "RECSVC_SESSION_HOURS")


def production_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", RECSVC_VAR_DIR=str(tmp_path),
               DJANGO_SECRET_KEY=os.urandom(40).hex(), RECSVC_FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode())
    return env


def test_check_deploy_passes_without_a_warning_in_production(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_production_cookies_and_sessions(tmp_path):
    script = ("from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
              "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
              "s.SESSION_COOKIE_AGE <= 12 * 3600)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=production_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True"] * 6, done.stderr


@pytest.fixture
def https_only(settings):
    """This process's settings as in production (the suite itself runs with RECSVC_HTTPS_ONLY=0)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000


@pytest.mark.django_db
def test_pages_redirect_to_https_but_the_probes_answer_plain_http(https_only):
    client = Client()
    page = client.get("/login")
    assert page.status_code == 301 and page["Location"] == "https://testserver/login"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_over_https_the_session_cookie_is_secure_and_hsts_is_sent(https_only, owner):
    client = Client()
    page = client.get("/login", secure=True)
    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert page.cookies["csrftoken"]["secure"] is True
    done = client.post("/login", {"username": owner.username, "password": "correct horse battery"}, secure=True)
    assert done.status_code == 302 and done.cookies["sessionid"]["secure"] is True
