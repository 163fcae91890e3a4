"""The suite writes its files (artifacts, their cache, imports) into scratch folders, never into the checkout's
var/, where `make demo` and the benchmarks keep their models (tests/conftest.py, `scratch_dirs`)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SCRATCH_DIRS


def test_the_suite_writes_into_scratch_folders_not_the_checkouts_var(settings, scratch_dirs):
    var = (Path(settings.BASE_DIR) / "var").resolve()
    for name in SCRATCH_DIRS:
        folder = Path(getattr(settings, name)).resolve()
        assert folder != var and var not in folder.parents, name
        assert str(folder) == str(Path(scratch_dirs[name]).resolve())  # what the Celery worker is given too
