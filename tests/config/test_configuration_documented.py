"""docs/configuration.md lists every environment variable the code reads, and none it no longer reads.

The service's variables are found in the Python source of the packages (the readers of config/env.py,
`os.environ[...]`, `os.environ.get/setdefault/pop(...)`, `os.getenv(...)`), the tooling's in the
Makefile and under deploy/. No Django, no database: the files are parsed, not imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
PACKAGES = ("config", "core", "tenants", "recs", "serving", "training", "demo")
SERVICE_SECTION = "## Settings the service reads"
TOOLING_SECTION = "## Settings the tooling reads"

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|")
_OS_ENVIRON_METHODS = {"get", "setdefault", "pop"}


def _env_helpers() -> set[str]:
    """The readers config/env.py defines (`env_str`, `env_int`, ...): a new one is scanned for too."""
    tree = ast.parse((ROOT / "config" / "env.py").read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("env_")}


def _is_os_environ(node: ast.AST) -> bool:
    """`os.environ`, or `environ` imported from os."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id == "environ"


def _name_argument(call: ast.Call) -> ast.AST | None:
    if call.args:
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg in {"name", "key"}), None)


def _env_reads(tree: ast.AST, helpers: set[str]):
    """(line, expression naming the variable) for every environment read in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            yield node.lineno, node.slice
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                called = func.id
            elif isinstance(func, ast.Attribute):
                called = func.attr
            else:
                continue
            environ_method = (
                isinstance(func, ast.Attribute) and called in _OS_ENVIRON_METHODS and _is_os_environ(func.value)
            )
            if called in helpers or called == "getenv" or environ_method:
                yield node.lineno, _name_argument(node)


def _as_name_or_pattern(expr: ast.AST | None) -> str | re.Pattern | None:
    """A literal name as a str; an f-string (`f"RECSVC_PLAN_{upper}_EVENTS"`) as a pattern; else None."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[A-Z0-9_]+" for v in expr.values]
        return re.compile("".join(parts))
    return None


def _scan_python() -> tuple[set[str], list[re.Pattern], list[str]]:
    helpers = _env_helpers()
    names: set[str] = set()
    patterns: list[re.Pattern] = []
    computed: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for lineno, expr in _env_reads(tree, helpers):
                found = _as_name_or_pattern(expr)
                where = f"{path.relative_to(ROOT)}:{lineno}"
                if isinstance(found, str):
                    names.add(found)
                elif found is not None:
                    patterns.append(found)
                elif path.relative_to(ROOT) != Path("config/env.py"):  # the readers themselves take a name
                    computed.append(where)
    return names, patterns, computed


def _scan_tooling() -> set[str]:
    """`$${NAME...}` and `NAME ?= ...` in the Makefile, `${NAME...}` in deploy/ (shell, nginx templates)."""
    makefile = (ROOT / "Makefile").read_text()
    names = set(re.findall(r"\$\$\{([A-Z][A-Z0-9_]*)", makefile))
    names |= set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=", makefile, flags=re.MULTILINE))
    for path in sorted((ROOT / "deploy").rglob("*")):
        if path.is_file():
            names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text(errors="replace")))
    return names


def _documented(section: str) -> list[str]:
    """First-column names of the table under `section` in docs/configuration.md."""
    lines = DOC.read_text().splitlines()
    assert section in lines, f"{DOC.relative_to(ROOT)} has no section {section!r}"
    names = []
    for line in lines[lines.index(section) + 1 :]:
        if line.startswith("## "):
            break
        match = _ROW.match(line)
        if match:
            names.append(match.group(1))
    return names


def test_the_scan_finds_the_variables_the_code_reads():
    names, patterns, _ = _scan_python()
    assert {"RECSVC_RECS_CACHE_SECONDS", "DATABASE_URL", "REDIS_URL", "RECSVC_WEB_WORKERS"} <= names
    assert "DJANGO_SETTINGS_MODULE" in names  # os.environ.setdefault
    assert all(_NAME.fullmatch(name) for name in names), sorted(n for n in names if not _NAME.fullmatch(n))
    assert any(p.fullmatch("RECSVC_PLAN_FREE_EVENTS") for p in patterns)  # the plans' f-string names
    assert {"TEST_DATABASE_URL", "PGHOST", "RECSVC_UPSTREAM", "PYTHON"} <= _scan_tooling()
    documented = _documented(SERVICE_SECTION)
    assert len(documented) == len(set(documented)), "a variable is documented twice"
    assert "RECSVC_RECS_CACHE_SECONDS" in documented


def test_every_variable_the_code_reads_is_documented():
    names, patterns, _ = _scan_python()
    documented = set(_documented(SERVICE_SECTION))
    missing = sorted(names - documented)
    missing += sorted(p.pattern for p in patterns if not any(p.fullmatch(d) for d in documented))
    tooling_missing = sorted(_scan_tooling() - set(_documented(TOOLING_SECTION)))
    assert not missing, f"read by the code but not in {DOC.relative_to(ROOT)} ({SERVICE_SECTION}): {missing}"
    assert not tooling_missing, (
        f"read by the Makefile or deploy/ but not in {DOC.relative_to(ROOT)} ({TOOLING_SECTION}): {tooling_missing}"
    )


def test_every_documented_variable_is_still_read():
    names, patterns, _ = _scan_python()
    stale = sorted(
        d for d in _documented(SERVICE_SECTION) if d not in names and not any(p.fullmatch(d) for p in patterns)
    )
    stale_tooling = sorted(set(_documented(TOOLING_SECTION)) - _scan_tooling())
    assert not stale, f"documented in {DOC.relative_to(ROOT)} but no longer read by the code: {stale}"
    assert not stale_tooling, (
        f"documented in {DOC.relative_to(ROOT)} but no longer read by the tooling: {stale_tooling}"
    )


def test_environment_reads_name_their_variable():
    """A name computed at run time would escape the scan above: outside config/env.py, say it literally
    (or as an f-string whose fixed parts the table's names match)."""
    _, _, computed = _scan_python()
    assert not computed, f"environment read with a computed name (write it literally): {computed}"
