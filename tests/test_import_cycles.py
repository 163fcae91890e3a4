"""No import cycles between our modules: not at module level, not hidden in a function-level import.

grimp's graph holds every import statement of a module, wherever it stands (module level, inside a function,
under TYPE_CHECKING). import-linter's acyclic_siblings contract (`make lint`) checks the packages within
each package; this test checks the modules themselves, across all the root packages.
"""

from __future__ import annotations

import grimp

ROOT_PACKAGES = ("config", "core", "tenants", "recs", "serving", "training", "demo", "experiments", "privacy")


def import_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One cycle per set of modules that import each other, as the chain a -> b -> ... -> a."""
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = (importer, *back)
                cycles.setdefault(frozenset(cycle), cycle)
    return sorted(cycles.values())


def test_no_module_imports_itself_back_through_other_modules():
    graph = grimp.build_graph(*ROOT_PACKAGES, cache_dir=None)
    assert [" -> ".join(cycle) for cycle in import_cycles(graph)] == []


def test_a_function_level_import_closing_a_cycle_is_found():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.tasks", "pkg.jobs"):
        graph.add_module(module)
    graph.add_import(importer="pkg.tasks", imported="pkg.jobs", line_number=1, line_contents="from pkg import jobs")
    assert import_cycles(graph) == []
    graph.add_import(importer="pkg.jobs", imported="pkg.tasks", line_number=9,
                     line_contents="    from pkg.tasks import train")  # inside a function
    assert import_cycles(graph) == [("pkg.jobs", "pkg.tasks", "pkg.jobs")]
