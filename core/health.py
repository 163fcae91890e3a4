"""Liveness (no dependencies: also the benchmarks' no-op floor) and readiness (database and cache)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"ok": True})


def readyz(request):
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is a probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        cache.set("readyz", 1, 5)
        checks["cache"] = "ok" if cache.get("readyz") == 1 else "degraded"
    except Exception as exc:
        checks["cache"] = f"error: {type(exc).__name__}"
    ok = checks["database"] == "ok"
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
