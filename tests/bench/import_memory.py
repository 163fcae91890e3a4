"""Peak memory of the streaming import: a file of many short lines against files of long lines.

    python tests/bench/import_memory.py                 # about a minute
    python tests/bench/import_memory.py --short 1000000 --long 400

Each import runs `recs.ingest.imports.run_import` in a fresh child process, which reports its peak RSS
(VmHWM) as one JSON line; an idle child (Django set up, the importer imported, nothing read) gives the
floor. Cases:
* short: many events of about 150 bytes (chunks end at CHUNK_ROWS);
* long: events padded to 900 KiB each (valid JSON: whitespace), twice as many in the second file, so a
  flat peak shows that memory does not grow with the file;
* long, unbounded chunks: the same file with CHUNK_BYTES lifted, i.e. chunks of CHUNK_ROWS lines only,
  as before chunks were bounded in bytes.

DATABASE_URL / REDIS_URL default to the local services (see tests/bench/_load.py); the script migrates,
creates a bench tenant with one product, and removes the tenant, its rows and the files when it ends.
It prints a table, then as its LAST line one JSON object with the figures (MB = MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

LONG_LINE_BYTES = 900 * 1024


def _event(i: int, tag: str) -> dict:
    return {"type": "view", "customer_id": f"c{i % 5000}", "product_id": "p1",
            "timestamp": "2024-05-01T10:00:00Z", "event_id": f"{tag}-{i}"}


def write_short(path: Path, n: int, tag: str) -> int:
    with open(path, "w") as out:
        for i in range(n):
            out.write(json.dumps(_event(i, tag)) + "\n")
    return path.stat().st_size


def write_long(path: Path, n: int, tag: str) -> int:
    with open(path, "w") as out:
        for i in range(n):
            line = json.dumps(_event(i, tag))
            out.write(line[:-1] + " " * (LONG_LINE_BYTES - len(line)) + "}\n")
    return path.stat().st_size


def _child(tenant_id: int, job_id: int, chunk_bytes: int) -> None:
    """In a fresh process: run the import (job 0: none, the floor) and print its figures as JSON."""
    _load.bootstrap_django(migrate=False)
    from recs.ingest import imports
    from recs.models import ImportJob
    from tenants.context import tenant_context

    limits = imports.ChunkLimits(bytes=chunk_bytes) if chunk_bytes else imports.DEFAULT_LIMITS
    outcome: dict = {"status": "idle"}
    if job_id:
        with tenant_context(tenant_id):
            job = ImportJob.objects.for_tenant(tenant_id).get(pk=job_id)
            started = time.perf_counter()
            job = imports.run_import(job, limits=limits)
            outcome = {"status": job.status, "error": job.error_message, "rows_ok": job.rows_ok,
                       "rows_failed": job.rows_failed, "wall_s": round(time.perf_counter() - started, 2)}
    print(json.dumps({**outcome, "peak_rss_kb": _load.proc_status_kb(os.getpid(), "VmHWM")}))


def _run_child(tenant_id: int, job_id: int, chunk_bytes: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(tenant_id), str(job_id), str(chunk_bytes)],
        capture_output=True, text=True, cwd=_load.REPO, check=False,
    )
    if out.returncode:
        raise RuntimeError(f"the import child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _import(tenant_id: int, path: Path, size: int, chunk_bytes: int = 0) -> dict:
    from recs.models import ImportJob
    from tenants.context import tenant_context

    with tenant_context(tenant_id):
        job = ImportJob.objects.create(tenant_id=tenant_id, kind="events", format="ndjson", file_path=str(path),
                                       size_bytes=size)
    outcome = _run_child(tenant_id, job.pk, chunk_bytes)
    if outcome["status"] != "succeeded":
        raise RuntimeError(f"import failed: {outcome}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=300_000, help="events in the file of short lines")
    parser.add_argument("--long", type=int, default=200, help="900 KiB events in the first file of long lines")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    _load.bootstrap_django()
    from recs.ingest import imports
    from recs.models import Product
    from tenants.context import dangerously_all_tenants
    from tenants.models import Tenant

    tag = uuid.uuid4().hex[:8]
    with dangerously_all_tenants():
        tenant = Tenant.objects.create(name=f"import memory bench {tag}", slug=f"import-memory-{tag}")
        Product.objects.create(tenant=tenant, external_id="p1", title="bench product")
    figures: dict = {"chunk_rows": imports.CHUNK_ROWS, "chunk_bytes": imports.CHUNK_BYTES,
                     "long_line_bytes": LONG_LINE_BYTES}
    try:
        with tempfile.TemporaryDirectory(prefix="import-memory-") as workdir:
            floor = _run_child(tenant.pk, 0)["peak_rss_kb"]
            figures["idle_child_peak_rss_mb"] = round(floor / 1024)
            cases = [
                ("short", write_short, args.short, 0),
                ("long", write_long, args.long, 0),
                ("long_x2", write_long, 2 * args.long, 0),
                ("long_unbounded_chunks", write_long, args.long, 1 << 40),
            ]
            print(f"{'case':<24}{'lines':>9}{'file MB':>9}{'peak RSS MB':>13}{'above idle MB':>15}{'wall s':>8}",
                  file=sys.stderr)
            for name, write, lines, chunk_bytes in cases:
                path = Path(workdir) / f"{name}.ndjson"
                size = write(path, lines, f"{tag}-{name}")
                outcome = _import(tenant.pk, path, size, chunk_bytes)
                path.unlink(missing_ok=True)
                peak = outcome["peak_rss_kb"]
                figures[name] = {
                    "lines": lines, "file_mb": round(size / 2**20), "rows_ok": outcome["rows_ok"],
                    "peak_rss_mb": round(peak / 1024), "above_idle_mb": round((peak - floor) / 1024),
                    "wall_s": outcome["wall_s"],
                }
                print(f"{name:<24}{lines:>9}{size / 2**20:>9.0f}{peak / 1024:>13.0f}{(peak - floor) / 1024:>15.0f}"
                      f"{outcome['wall_s']:>8.1f}", file=sys.stderr)
    finally:
        with dangerously_all_tenants():
            tenant.delete()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
