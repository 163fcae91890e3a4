"""The API's documentation pages in a real browser (Debian's headless Chromium), cut off from every host
but the test server: Swagger UI and ReDoc come from this project (drf-spectacular-sidecar), and run under
the Content-Security-Policy the pages are served with (scripts from 'self' only)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from rest_framework.test import APIClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]


def _render(url: str, tmp_path) -> tuple[str, str]:
    """(the DOM once the page's scripts ran, the browser's log). Every host name but the test server's
    (localhost) resolves to nothing, so the page can reach nothing else."""
    run = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
            "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=15000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


def _refusals(log: str) -> list[str]:
    """Console lines of the page: a script or style the policy refused, a load that failed."""
    return [
        line for line in log.splitlines()
        if "Content Security Policy" in line or "ERR_NAME_NOT_RESOLVED" in line or "net::ERR" in line
    ]


def test_swagger_ui_renders_offline_under_the_policy(live_server, tmp_path):
    dom, log = _render(f"{live_server.url}/v1/docs", tmp_path)
    # Swagger UI drew the document it fetched from /v1/schema: its title and the operations.
    assert 'class="swagger-ui' in dom, log[-3000:]
    assert "Recommendation service API" in dom
    assert "/v1/recommendations" in dom and "/v1/events/bulk" in dom
    assert _refusals(log) == []


def test_redoc_renders_offline_under_the_policy(live_server, tmp_path):
    dom, log = _render(f"{live_server.url}/v1/redoc", tmp_path)
    assert "Recommendation service API" in dom, log[-3000:]
    assert "/v1/recommendations" in dom
    # ReDoc's bundle hard-codes its footer logo on Redocly's CDN; the policy refuses it (the image then
    # hides itself), and nothing else is refused or fails.
    refused = [line for line in _refusals(log) if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in line]
    assert refused == []


def test_the_docs_pages_name_no_other_origin_and_send_the_policy():
    client = APIClient()
    for path in ("/v1/docs", "/v1/redoc"):
        response = client.get(path)
        assert response.status_code == 200
        html = response.content.decode()
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html, path
        assert "<script>" not in html.replace(" ", ""), path  # no inline script to allow
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "jsdelivr" not in policy, path
    script = client.get("/v1/docs?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/v1/schema" in script.content.decode()
