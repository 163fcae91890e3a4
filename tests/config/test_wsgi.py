"""The WSGI module a web worker imports: everything the process keeps for life is frozen out of the
cyclic garbage collector's walks (config/wsgi.py)."""

from __future__ import annotations

import json
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


def test_a_worker_runs_every_compute_pool_it_loaded_on_the_configured_threads():
    script = textwrap.dedent("""
        import json
        import config.wsgi, torch
        from threadpoolctl import threadpool_info
        pools = {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}
        print(json.dumps({"torch": torch.get_num_threads(), "pools": sorted(pools.items())}))
    """)
    inherited = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # the defaults, as deployed
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "config.settings", "RECSVC_SERVING_COMPUTE_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.splitlines()[-1])
    apis = {api for (api, _path), _threads in found["pools"]}
    assert {"openmp", "openblas"} <= apis  # FAISS's and numpy's runtimes are loaded by then, and seen
    assert found["torch"] == 1
    assert {threads for _pool, threads in found["pools"]} == {1}
