"""benchfab's modules import each other in one direction: no import cycle, counting the
imports inside functions (lazy) and under ``if TYPE_CHECKING:`` too, and no exemption from
the import-linter layers (pyproject.toml holds no ``ignore_imports``).

The graph is grimp's (import-linter's own graph builder), built from the source each time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import grimp

from tests.helpers import ROOT

# The compiled extension benchfab._native has no Python source, so grimp, which cannot see
# it, files `import benchfab._native` under the package root `benchfab`. It imports nothing
# of benchfab: such an edge ends at a leaf, and is counted as one.
_EXTENSION = "benchfab._native"


def import_graph() -> dict[str, set[str]]:
    """module -> the benchfab modules it imports, at run time, lazily or for type checking."""
    graph = grimp.build_graph("benchfab", exclude_type_checking_imports=False, cache_dir=None)
    edges: dict[str, set[str]] = {module: set() for module in graph.modules}
    edges[_EXTENSION] = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported == "benchfab" and _only_the_extension(graph, importer):
                imported = _EXTENSION
            edges[importer].add(imported)
    return edges


def _only_the_extension(graph: grimp.ImportGraph, importer: str) -> bool:
    lines = [d["line_contents"] for d in graph.get_import_details(importer=importer, imported="benchfab")]
    return bool(lines) and all(_EXTENSION in line for line in lines)


def import_cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself): each is a set of modules that import each other in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        # Tarjan's algorithm with an explicit stack of (module, its remaining successors).
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(edges.get(step, ())))))
                elif step in on_stack:
                    low[module] = min(low[module], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in edges.get(module, ()):
                    found.append(sorted(component))
    return found


def test_no_import_cycle_counting_lazy_and_type_checking_imports() -> None:
    edges = import_graph()
    assert "benchfab.workloads.point_to_point" in edges and edges["benchfab.workloads"]  # the graph is real
    cycles = import_cycles(edges)
    described = ["\n".join(f"  {a} -> {b}" for a in cycle for b in sorted(edges[a] & set(cycle))) for cycle in cycles]
    assert not cycles, "modules that import each other in a circle:\n" + "\n\n".join(described)


def test_the_cycle_finder_sees_a_cycle() -> None:
    # Else the test above could not fail: a circle of three, a self-import, and a chain that is none.
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"d"}}
    assert import_cycles(edges) == [["a", "b", "c"], ["e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_exemption_from_the_layers() -> None:
    # Read as text: tomllib is Python 3.11+, and benchfab runs on 3.10. A key of a contract
    # table starts its line (a comment mentioning the word does not).
    text = (ROOT / "pyproject.toml").read_text()
    assert "[[tool.importlinter.contracts]]" in text, "pyproject.toml has no import-linter contracts"
    exempt = re.findall(r"^\s*ignore_imports\s*=.*$", text, re.M)
    assert not exempt, f"import-linter exemptions in pyproject.toml: {exempt}"
