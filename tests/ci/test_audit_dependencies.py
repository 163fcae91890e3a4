"""The CI's dependency audit: fails on a vulnerable package, says so when nothing could be audited."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "audit_dependencies", Path(__file__).resolve().parents[2] / ".ci" / "audit_dependencies.py"
)
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)


def _report(*deps):
    return {"dependencies": list(deps), "fixes": []}


def test_a_vulnerable_locked_package_fails_the_audit():
    code, lines, _ = audit.verdict(_report(
        {"name": "django", "version": "4.2.0", "vulns": [{"id": "PYSEC-2023-100", "fix_versions": ["4.2.2"]}]},
        {"name": "redis", "version": "6.0.0", "vulns": []},
    ))
    assert code == 1
    assert lines[0] == "VULNERABLE django 4.2.0: PYSEC-2023-100 (fixed in 4.2.2)"
    assert lines[-1] == "pip-audit: 2 of 2 locked packages audited, 1 vulnerable"


def test_an_audit_that_reached_no_service_passes_but_says_nothing_was_audited():
    skipped = {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    code, lines, warnings = audit.verdict(_report(skipped))
    assert code == 0 and lines == ["pip-audit: 0 of 1 locked packages audited, 0 vulnerable"]
    assert "nothing was audited" in warnings[0]


def test_packages_that_could_not_be_audited_are_named():
    code, _, warnings = audit.verdict(_report(
        {"name": "redis", "version": "6.0.0", "vulns": []},
        {"name": "torch", "skip_reason": "local build"},
    ))
    assert code == 0 and warnings == ["not audited: torch"]
