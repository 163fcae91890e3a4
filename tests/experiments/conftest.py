"""Fixtures of the experiments tests: each test starts with no process-local copy of running experiments."""

from __future__ import annotations

import pytest

from experiments import running
from tests.recs.conftest import trained  # noqa: F401  (a shop with an active model, for the serving tests)


@pytest.fixture(autouse=True)
def _fresh_running():
    running.clear()
    yield
    running.clear()
