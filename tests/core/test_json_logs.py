"""Log lines are JSON objects carrying the request id (the caller's X-Request-ID, or a new one, echoed in
the response) and the shop of the request, through the handler config/settings.py configures."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.logs import access_log


@pytest.fixture
def log_lines():
    """What the configured console handler writes, as a list of lines, with request lines switched on."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer = io.StringIO()
    previous_stream, previous_level = handler.setStream(buffer), access_log.level
    access_log.setLevel(logging.INFO)
    yield lambda: [line for line in buffer.getvalue().splitlines() if line]
    access_log.setLevel(previous_level)
    handler.setStream(previous_stream)


@pytest.mark.django_db
def test_a_request_line_is_json_with_the_request_id_and_the_shop(recommend_api, tenant, log_lines):
    response = recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}, HTTP_X_REQUEST_ID="req-42.a")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-42.a"
    lines = [json.loads(line) for line in log_lines()]
    request_line = next(line for line in lines if line["logger"] == "recsvc.request")
    assert request_line["request_id"] == "req-42.a"
    assert request_line["shop"] == str(tenant.id)
    assert request_line["path"] == "/v1/recommendations" and request_line["status"] == 200
    assert request_line["level"] == "INFO" and request_line["message"] == "request"


@pytest.mark.django_db
def test_a_forged_request_id_is_replaced_and_lines_inside_the_request_carry_it(client, log_lines):
    # Quotes and a newline would forge log structure in a text log: such an id is replaced by a new one.
    response = client.get("/healthz", HTTP_X_REQUEST_ID='x" \n{"level": "ERROR"}')
    rid = response["X-Request-ID"]
    assert len(rid) == 32 and rid.isalnum()
    (line,) = [json.loads(line) for line in log_lines()]
    assert line["request_id"] == rid and line["shop"] == ""


def test_a_line_written_in_a_tenant_scope_names_its_shop(log_lines):
    from tenants.context import tenant_context

    with tenant_context(7):
        logging.getLogger("recsvc.test").warning("inside a shop's scope")
    (line,) = [json.loads(line) for line in log_lines()]
    assert line["shop"] == "7" and line["message"] == "inside a shop's scope" and line["level"] == "WARNING"
