"""Query values and path ids that Python accepts but PostgreSQL refuses (found by schemathesis against the
PostgreSQL demo, where each was a 500) are answered as problems, or as what they mean."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path, field", [
    ("/v1/products?updated_since=0799-01-28T16:39:54%2B19:31", None),  # offset beyond PostgreSQL's ±15:59
    ("/v1/customers?updated_since=0011-09-22T22:43:25%2B22:19", None),
    ("/v1/events?until=2781-07-26T23:07:24.53801-23:32", None),
    ("/v1/events?since=0001-01-01T00:00:00%2B01:00", "since"),  # before year 1 in UTC
    ("/v1/products?updated_since=9999-12-31T23:59:59-01:00", "updated_since"),  # after 9999 in UTC
])
def test_an_instant_with_any_offset_python_reads_is_a_filter_or_a_400(api, path, field):
    response = api.get(path)
    if field is None:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 400, response.content
        assert field in response.json()["errors"]


def test_an_offset_postgresql_refuses_still_filters_by_the_instant_it_names(api, tenant):
    ProductFactory(tenant=tenant, external_id="p1")
    # 20:00+19:31 is 00:29 UTC that day: the product, updated now, is after it two days ago, before it in two.
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%dT20:00:00%%2B19:31")
    assert [p["id"] for p in api.get(f"/v1/products?updated_since={since}").json()["results"]] == ["p1"]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT20:00:00%%2B19:31")
    assert api.get(f"/v1/products?updated_since={later}").json()["results"] == []


@pytest.mark.parametrize("path", ["/v1/customers/a%00b", "/v1/products/a%00b", "/v1/products/a%00b/similar",
                                  "/v1/event-types/a%00b", "/v1/rules/1%00"])
def test_an_id_holding_a_nul_is_a_404_problem(api, path):
    response = api.get(path)
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/problem+json"
