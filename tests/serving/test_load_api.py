"""Serving reaches training only through the registry's load API (training/registry/load.py): the import-linter
contract `serving-through-load-api` (pyproject.toml, `make lint`) forbids every other training module, listed
one by one. This keeps that list complete as training grows, and the contract strict."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

import training.registry.load

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LOAD_API = "training.registry.load"


def _contract() -> dict:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == "serving-through-load-api")


def test_the_contract_forbids_every_training_module_but_the_load_api():
    contract = _contract()
    forbidden = set(contract["forbidden_modules"])
    graph = grimp.build_graph("training", cache_dir=None)
    open_to_serving = {
        module for module in graph.modules
        if not any(module == f or module.startswith(f + ".") for f in forbidden)
    }
    # The two packages' own __init__ modules are empty.
    assert open_to_serving == {"training", "training.registry", LOAD_API}


def test_the_contract_makes_no_exceptions():
    contract = _contract()
    assert contract["type"] == "forbidden" and contract["source_modules"] == ["serving"]
    assert "ignore_imports" not in contract


def test_the_load_api_exports_what_it_names():
    missing = [name for name in training.registry.load.__all__ if not hasattr(training.registry.load, name)]
    assert missing == []
