"""Shared fixtures: personas (owner, member, outsider), API clients authenticated by API key."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from config.celery import app as celery_app
from serving import candidate_rows
from tenants.api_keys import create_api_key
from tenants.context import dangerously_all_tenants
from tenants.models import Membership
from tests.browser import signed_in
from tests.factories import MembershipFactory, ProductFactory, TenantFactory, UserFactory

pytest_plugins = ["tests.celery_worker"]

# Folders the code writes files into. Under var/ of the checkout they are `make demo`'s and the
# benchmarks' too, and a test's tenant 1 version 1 is theirs as well: a test discarding its run's
# artifacts removed the kept MovieLens bench model once. The suite writes into a scratch folder instead.
SCRATCH_DIRS = ("RECSVC_ARTIFACT_DIR", "RECSVC_ARTIFACT_CACHE_DIR", "RECSVC_IMPORT_DIR")


@pytest.fixture(scope="session", autouse=True)
def scratch_dirs(tmp_path_factory) -> dict[str, str]:
    """The session's scratch folders (tests still override them per test through `settings`); the
    Celery worker process gets the same ones."""
    from django.conf import settings

    root = tmp_path_factory.mktemp("var")
    previous = {name: getattr(settings, name) for name in SCRATCH_DIRS}
    for name in SCRATCH_DIRS:
        setattr(settings, name, root / name.removeprefix("RECSVC_").lower())
    yield {name: str(getattr(settings, name)) for name in SCRATCH_DIRS}
    for name, value in previous.items():
        setattr(settings, name, value)


@pytest.fixture(autouse=True)
def _isolated_cache():
    cache.clear()
    candidate_rows.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _eager_tasks():
    """Tasks run in process unless a test asks for the real worker (`celery_worker` fixture)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def all_tenants(db):
    """Test set-up and assertions read across tenants; the code under test sets its own tenant."""
    with dangerously_all_tenants():
        yield


@pytest.fixture
def tenant(all_tenants):
    return TenantFactory(name="Shop A", slug="shop-a")


@pytest.fixture
def other_tenant(all_tenants):
    return TenantFactory(name="Shop B", slug="shop-b")


@pytest.fixture
def owner(tenant):
    return MembershipFactory(tenant=tenant, role=Membership.Role.OWNER, user=UserFactory()).user


@pytest.fixture
def member(tenant):
    return MembershipFactory(tenant=tenant, role=Membership.Role.MEMBER, user=UserFactory()).user


@pytest.fixture
def outsider(other_tenant):
    return MembershipFactory(tenant=other_tenant, role=Membership.Role.OWNER, user=UserFactory()).user


def _client_for(tenant, scopes) -> APIClient:
    _, raw = create_api_key(tenant, name="test", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    return client


@pytest.fixture
def api(tenant) -> APIClient:
    """Tenant A's admin key."""
    return _client_for(tenant, ["admin"])


@pytest.fixture
def ingest_api(tenant) -> APIClient:
    return _client_for(tenant, ["ingest"])


@pytest.fixture
def recommend_api(tenant) -> APIClient:
    return _client_for(tenant, ["recommend"])


@pytest.fixture
def outsider_api(other_tenant) -> APIClient:
    """Tenant B's admin key: must never see or change tenant A's data."""
    return _client_for(other_tenant, ["admin"])


@pytest.fixture
def two_shops(db):
    """Shops A and B with 3 and 2 products, made with the wall lifted; tests look from outside it."""
    a, b = TenantFactory(), TenantFactory()
    with dangerously_all_tenants():
        ProductFactory.create_batch(3, tenant=a)
        ProductFactory.create_batch(2, tenant=b)
    return a, b


@pytest.fixture
def fast_passwords(settings):
    """A cheap password hasher for tests that log in through pages (the real one is tested in tests/tenants)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def browser(live_server, owner):
    """Headless Chromium signed in as shop A's owner (tests/browser.py)."""
    driver = signed_in(live_server, owner)
    yield driver
    driver.quit()
