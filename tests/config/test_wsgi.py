"""The WSGI module a web worker imports: everything the process keeps for life is frozen out of the
cyclic garbage collector's walks (config/wsgi.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_freezes_its_imports_views_included_before_serving():
    script = textwrap.dedent("""
        import gc, sys
        assert gc.get_freeze_count() == 0
        import config.wsgi
        print(gc.get_freeze_count(), "serving.funnel" in sys.modules, len(gc.get_objects()))
    """)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    frozen, views_imported, still_tracked = out.stdout.split()
    assert views_imported == "True"  # the URL conf was loaded before the freeze, not at the first request
    assert int(frozen) > 100_000  # Django, DRF, torch, FAISS and the project's modules
    assert int(still_tracked) < int(frozen) // 10  # a full collection now walks a small fraction
