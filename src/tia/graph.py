"""Graphs of the repository: the static import graph, and the file/scope/test dependency graph.

This is the only module that uses networkx.  The import graph has an edge
``a.py -> b.py`` when ``a.py`` imports ``b.py``, and ``a.py -> data.json`` when
``a.py`` read that file while it was imported; `importers` walks it backwards.
The dependency graph is what `tia graph` exports and `tia explain` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from tia.imports import ModuleResolver
from tia.records import TestRecord
from tia.scopes import FileIndex


class ImportGraph:
    """Who imports whom among the repository's Python files, now."""

    def __init__(
        self,
        paths: Iterable[str],
        index_of: Callable[[str], FileIndex | None],
        reads: dict[str, frozenset[str]],
    ) -> None:
        paths = list(paths)
        resolver = ModuleResolver(paths)
        self.graph: nx.DiGraph = nx.DiGraph()
        for path in resolver.files:
            self.graph.add_node(path)
            index = index_of(path)
            if index is None:
                continue
            for target in resolver.resolve(path, index.imports):
                self.graph.add_edge(path, target)
        for opener, data_files in reads.items():
            for data in data_files:
                self.graph.add_edge(opener, data)

    def importers(self, path: str) -> set[str]:
        """`path` and every file that imports it, directly or through others."""
        if path not in self.graph:
            return {path}
        return {path, *nx.ancestors(self.graph, path)}


def dependency_graph(tests: dict[str, TestRecord], rootdir: str) -> nx.DiGraph:
    """Files, scopes and tests: ``test -> file`` and ``test -> file:scope -> file`` edges."""
    graph: nx.DiGraph = nx.DiGraph()
    for nodeid, record in sorted(tests.items()):
        graph.add_node(nodeid, kind="test", outcome=record.outcome, duration=record.duration)
        for path, (sha, scopes) in sorted(record.deps.items()):
            graph.add_node(path, kind="file")
            graph.add_edge(nodeid, path, blob=sha)
            for scope in sorted(scopes):
                # One colon: "a.py::test_x" is a test's node id, "a.py:f" a scope.
                scope_node = f"{path}:{scope}"
                graph.add_node(scope_node, kind="scope", file=path, scope=scope)
                graph.add_edge(scope_node, path)
                graph.add_edge(nodeid, scope_node)
    graph.graph["rootdir"] = rootdir
    return graph


def export(graph: nx.DiGraph, fmt: str) -> str:
    if fmt == "graphml":
        return "\n".join(nx.generate_graphml(graph))
    data: dict[str, Any] = nx.node_link_data(graph, edges="edges")
    return json.dumps(data, indent=1, sort_keys=True)
