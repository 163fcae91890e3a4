"""The published API description: a valid OpenAPI 3 document, generated without warnings, and browsable docs."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_generates_and_validates_without_warnings(tmp_path):
    target = tmp_path / "openapi.yaml"
    stderr = io.StringIO()
    # --fail-on-warn turns any generator warning or error into an exception.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target), stderr=stderr)
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    assert "/v1/products/{id}" in document["paths"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer rsk_...`."
    }


def test_schema_endpoint_serves_the_document():
    response = APIClient().get("/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Recommendation service API"
    paths = document["paths"]
    assert {"/v1/products", "/v1/customers", "/v1/events/bulk", "/v1/imports", "/v1/event-types/{name}"} <= set(paths)
    # Every operation declares the API key and a typed 2xx answer.
    for path, item in paths.items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                assert operation["security"] == [{"ApiKey": []}], (method, path)
                assert any(code.startswith("2") for code in operation["responses"]), (method, path)
    events_id = paths["/v1/events/{id}"]["get"]["parameters"][0]
    assert events_id["schema"]["type"] == "integer"


def test_docs_render():
    response = APIClient().get("/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    assert "/v1/docs?script=" in html  # the start-up script, a file of its own, loads /v1/schema
    assert "/v1/schema" in APIClient().get("/v1/docs?script=").content.decode()
    assert APIClient().get("/v1/redoc").status_code == 200


def _document() -> dict:
    return APIClient().get("/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_answers_of_list_actions_are_documented_as_the_one_object_they_are():
    paths = _document()["paths"]
    for path in ("/v1/recommendations", "/v1/popular", "/v1/products/{id}/similar"):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/RecommendationAnswer"}, path


def test_every_operation_documents_the_problems_it_can_answer():
    document = _document()
    problem = {"$ref": "#/components/schemas/Problem"}
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation["responses"]
            expected = {"401", "402", "403", "429"}
            if "{" in path or any(p["name"] == "cursor" for p in operation.get("parameters", [])):
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"400", "413", "415"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for code in expected:
                assert responses[code]["content"]["application/problem+json"]["schema"] == problem, (method, path)


def test_creating_an_existing_catalog_item_documents_its_conflict():
    paths = _document()["paths"]
    for path in ("/v1/products", "/v1/customers"):
        conflict = paths[path]["post"]["responses"]["409"]
        assert conflict["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "201" in paths[path]["post"]["responses"]


def test_real_problem_answers_match_the_documented_problem(api, outsider_api):
    properties = _document()["components"]["schemas"]["Problem"]["properties"]
    answers = [
        APIClient().get("/v1/products"),  # 401
        api.post("/v1/products", {"external_id": "p", "price": "free"}, format="json"),  # 400 with field errors
        outsider_api.get("/v1/products/does-not-exist"),  # 404
        api.generic("POST", "/v1/events/bulk", b"[", content_type="text/plain"),  # 415
    ]
    assert [a.status_code for a in answers] == [401, 400, 404, 415]
    for answer in answers:
        body = answer.json()
        assert answer["Content-Type"] == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(body) <= set(properties), body
        assert body["status"] == answer.status_code
