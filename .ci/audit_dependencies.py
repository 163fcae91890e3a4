#!/usr/bin/env python3
"""Audit the locked dependencies (exactly what the venv installed from constraints.txt) with pip-audit.

Fails when a known vulnerability affects an installed version. pip-audit asks PyPI's per-release JSON
API (or OSV); where neither is reachable it skips every package rather than failing, and this script
says so loudly instead of passing silently: a run that audited nothing is reported as such.

    .venv/bin/python .ci/audit_dependencies.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def main() -> int:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    pinned = "\n".join(line for line in frozen.splitlines() if "==" in line)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write(pinned + "\n")
        requirements.flush()
        audit = subprocess.run(
            [str(VENV_BIN / "pip-audit"), "-r", requirements.name, "--no-deps", "--disable-pip", "-f", "json",
             "--progress-spinner", "off"],
            capture_output=True, text=True,
        )
    try:
        report = json.loads(audit.stdout)
    except json.JSONDecodeError:
        print(audit.stderr, file=sys.stderr)
        print("pip-audit failed before auditing anything", file=sys.stderr)
        return 1
    code, lines, warnings = verdict(report)
    print("\n".join(lines))
    if warnings:
        print("\n".join(warnings), file=sys.stderr)
    return code


def verdict(report: dict) -> tuple[int, list[str], list[str]]:
    """(exit code, lines, warnings) for pip-audit's JSON report: 1 when any package is vulnerable."""
    deps = report["dependencies"]
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            lines.append(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    audited = len(deps) - len(skipped)
    lines.append(f"pip-audit: {audited} of {len(deps)} locked packages audited, {len(vulnerable)} vulnerable")
    warnings = []
    if skipped and not audited:
        warnings.append("WARNING: no vulnerability service was reachable from this machine (PyPI's per-release"
                        " JSON API and OSV): nothing was audited")
    elif skipped:
        warnings.append(f"not audited: {', '.join(d['name'] for d in skipped)}")
    return (1 if vulnerable else 0), lines, warnings

if __name__ == "__main__":
    sys.exit(main())
