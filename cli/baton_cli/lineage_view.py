"""Table lineage from the catalog: each table's last writer and the tables that writer read.

Edges are `upstream -> table` labelled with the job (run, job key) that wrote `table`
from `upstream`. Only the last write of each table is known (the catalog keeps one row
per table), which is what the data in it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from rich.tree import Tree

from baton.domain.records import CatalogEntry
from baton_cli.render import timestamp


@dataclass
class LineageGraph:
    writers: dict[str, CatalogEntry]
    readers: dict[str, list[CatalogEntry]]  # table -> the writes of tables whose jobs read it

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self.writers = {}
        self.readers = {}
        for entry in entries:
            self.writers[entry.table_ref] = entry
            for upstream in entry.upstream_tables:
                self.readers.setdefault(upstream, []).append(entry)

    def resolve(self, table: str, project: str) -> str | None:
        """The catalog's name of `table`; `dataset.table` is read in the environment's project."""
        for name in (table, f"{project}.{table}"):
            if name in self.writers or name in self.readers:
                return name
        return None

    def upstream(self, table: str) -> list[str]:
        entry = self.writers.get(table)
        return list(entry.upstream_tables) if entry else []

    def downstream(self, table: str) -> list[CatalogEntry]:
        return sorted(self.readers.get(table, []), key=lambda entry: entry.table_ref)


def _label(table: str, entry: CatalogEntry | None, verb: str = "written by", style: str = "") -> Text:
    """`table  written by job (run, time)`, or `table  (not written by Baton)`: a source Baton only reads."""
    if entry is None:
        return Text.assemble((table, style), ("  (not written by Baton)", "dim"))
    job = f"{entry.job_key} (run {entry.run_id}, {timestamp(entry.written_at)})"
    return Text.assemble((table, style), f"  {verb} ", (job, "cyan"))


def lineage_view(graph: LineageGraph, table: str, depth: int) -> Tree:
    root = Tree(_label(table, graph.writers.get(table), style="bold"))
    up = root.add(Text("upstream (what it was made from)", style="bold"))
    _grow(graph, up, table, depth, upward=True, seen={table})
    down = root.add(Text("downstream (what was made from it)", style="bold"))
    _grow(graph, down, table, depth, upward=False, seen={table})
    return root


def _grow(graph: LineageGraph, node: Tree, table: str, depth: int, *, upward: bool, seen: set[str]) -> None:
    if depth == 0:
        return
    if upward:
        neighbours = [(name, graph.writers.get(name)) for name in graph.upstream(table)]
    else:
        neighbours = [(entry.table_ref, entry) for entry in graph.downstream(table)]
    if not neighbours:
        node.add(Text("none recorded", style="dim"))
        return
    for name, writer in neighbours:
        child = node.add(_label(name, writer, "written by" if upward else "by"))
        if name in seen:
            child.add(Text("(already shown)", style="dim"))
            continue
        _grow(graph, child, name, depth - 1, upward=upward, seen=seen | {name})
