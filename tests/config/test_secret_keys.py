"""Only the embedded demo runs on the built-in secret key: with PostgreSQL or Redis configured, settings
refuse to load without a key of the install's own and a field-encryption key (started in a subprocess,
as a web worker would be)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRINT_KEYS = (
    "from django.conf import settings; print(settings.SECRET_KEY); print(settings.RECSVC_FIELD_ENCRYPTION_KEYS[0])"
)
KEYS = ("DJANGO_SECRET_KEY", "RECSVC_FIELD_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL")


def start(tmp_path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in KEYS}
    base.update(DJANGO_SETTINGS_MODULE="config.settings", RECSVC_VAR_DIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", PRINT_KEYS], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "configured",
    [
        {"DATABASE_URL": "postgres://recsvc@127.0.0.1:5432/recsvc"},
        {"REDIS_URL": "redis://127.0.0.1:6379/0"},
        {"DATABASE_URL": "postgres://recsvc@127.0.0.1:5432/recsvc", "DJANGO_SECRET_KEY": ""},
        {"DATABASE_URL": "postgres://recsvc@127.0.0.1:5432/recsvc",
         "DJANGO_SECRET_KEY": "insecure-dev-key-only-for-the-embedded-demo"},
    ],
)
def test_a_configured_service_refuses_the_built_in_key(tmp_path, configured):
    done = start(tmp_path, RECSVC_FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(), **configured)
    assert done.returncode != 0
    refusal = "DJANGO_SECRET_KEY must be set to a long random value of your own whenever DATABASE_URL or REDIS_URL"
    assert refusal in done.stderr
    assert "insecure-dev-key" not in done.stdout


def test_a_configured_service_refuses_to_derive_the_field_key(tmp_path):
    done = start(tmp_path, DATABASE_URL="postgres://recsvc@127.0.0.1:5432/recsvc", DJANGO_SECRET_KEY="k" * 60)
    assert done.returncode != 0
    assert "RECSVC_FIELD_ENCRYPTION_KEY must be set whenever DATABASE_URL or REDIS_URL is set" in done.stderr


def test_a_configured_service_runs_on_its_own_keys(tmp_path):
    field_key = Fernet.generate_key().decode()
    done = start(tmp_path, DATABASE_URL="postgres://recsvc@127.0.0.1:5432/recsvc", DJANGO_SECRET_KEY="k" * 60,
                 RECSVC_FIELD_ENCRYPTION_KEY=field_key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["k" * 60, field_key]


def test_the_embedded_demo_starts_with_no_configuration(tmp_path):
    done = start(tmp_path)
    assert done.returncode == 0, done.stderr
    secret, field_key = done.stdout.split()
    assert secret == "insecure-dev-key-only-for-the-embedded-demo"
    Fernet(field_key)  # derived, and a valid key
