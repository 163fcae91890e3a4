"""Errors that never reach DRF (no route matched, an unhandled exception) still answer API clients with a
problem document, and people with the dashboard's pages (core/problems.py, config/urls.py)."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver

from core.problems import server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/v1/boosts/0.5", "/v1/no-such-collection", "/webhooks/nowhere"])
def test_an_api_url_no_route_matches_is_a_404_problem(api, path):
    response = api.delete(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json() == {"type": "/problems/not-found", "title": "Not found", "status": 404,
                               "detail": "No such resource."}


def test_a_page_no_route_matches_is_the_dashboards_404_page():
    response = Client().get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Page not found" in response.content


def test_an_unhandled_error_under_the_api_is_a_500_problem_and_elsewhere_a_page():
    assert get_resolver().resolve_error_handler(500) is server_error
    api = server_error(RequestFactory().get("/v1/recommendations"))
    assert api.status_code == 500 and api["Content-Type"] == "application/problem+json"
    assert b'"status": 500' in api.content
    page = server_error(RequestFactory().get("/"))
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
