"""A tiny trained shop for the serving tests (about two seconds to train)."""

from __future__ import annotations

import pytest

from tests.factories import TenantFactory
from tests.serving.trained import forget_served_state, load_shop, train_active_version


@pytest.fixture
def shop(all_tenants, settings, tmp_path):
    """(tenant, its active version), trained into a temporary artifact directory."""
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    tenant = TenantFactory()
    load_shop(tenant)
    version = train_active_version(tenant)
    yield tenant, version
    forget_served_state()
