"""What the local BigQuery meters, since its engine reports 0 for every size: table bytes, bytes a query
processed and billed, and the tables it read.

BigQuery's own rules, simplified where the engine cannot tell more:
- a table's logical size is the sum of its values' sizes (INT64, FLOAT64, DATE, TIME, DATETIME and
  TIMESTAMP 8 bytes, BOOL 1, NUMERIC 16, BIGNUMERIC 32, STRING and BYTES 2 + length; NULL 0);
- a query processes the tables it reads (here: whole tables, where BigQuery counts only the columns read);
- on demand, each table read is billed at least 10 MiB, rounded up to a whole MiB.
The tables a query reads are found in its text (FROM and JOIN of a qualified name), as the audit
entry's `referencedTables` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MIB = 2**20
MIN_BILLED_PER_TABLE = 10 * MIB
_FIXED = {"INTEGER": 8, "INT64": 8, "FLOAT": 8, "FLOAT64": 8, "DATE": 8, "TIME": 8, "DATETIME": 8, "TIMESTAMP": 8}
_FIXED.update({"BOOLEAN": 1, "BOOL": 1, "NUMERIC": 16, "BIGNUMERIC": 32})
_IDENTIFIER = r"(?:`[^`]+`|[A-Za-z_][\w-]*)"
_TABLE_AFTER = re.compile(rf"\b(?:FROM|JOIN)\s+(?P<name>{_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER}){{0,2}})", re.IGNORECASE)

EngineCall = Callable[..., Any]  # (method, path, params=..., json_body=...) -> requests.Response


def referenced_tables(sql: str, project: str) -> list[dict[str, str]]:
    """Qualified tables after FROM or JOIN (dataset.table or project.dataset.table), in order, once each.

    A single-part name is a CTE or an alias, never a table Baton's jobs read without a dataset.
    """
    found: dict[tuple[str, str, str], None] = {}
    for match in _TABLE_AFTER.finditer(_without_comments(sql)):
        parts = [part for piece in match["name"].split(".") for part in [piece.strip().strip("`")] if part]
        parts = [p for raw in parts for p in raw.split(".")]  # `a.b.c` in one pair of backticks
        if len(parts) == 2:
            parts = [project, *parts]
        if len(parts) == 3:
            found[(parts[0], parts[1], parts[2])] = None
    return [{"projectId": p, "datasetId": d, "tableId": t} for p, d, t in found]


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)


def _value_size(name: str, field_type: str) -> str:
    column = f"`{name}`"
    if field_type in _FIXED:
        return f"IF({column} IS NULL, 0, {_FIXED[field_type]})"
    if field_type in ("STRING", "BYTES"):
        return f"IF({column} IS NULL, 0, 2 + LENGTH({column}))"
    return f"IF({column} IS NULL, 0, 8)"  # records and the rest: a nominal size


def table_bytes(engine_call: EngineCall, table: Mapping[str, str]) -> int | None:
    """The table's logical bytes, counted by a query on the engine; None if the table cannot be read."""
    path = f"/bigquery/v2/projects/{table['projectId']}/datasets/{table['datasetId']}/tables/{table['tableId']}"
    resource = engine_call("GET", path)
    if resource.status_code != 200:
        return None
    fields = (resource.json().get("schema") or {}).get("fields") or []
    if not fields:
        return 0
    sizes = " + ".join(_value_size(f["name"], str(f.get("type", "")).upper()) for f in fields)
    name = f"`{table['projectId']}.{table['datasetId']}.{table['tableId']}`"
    body = {"query": f"SELECT COALESCE(SUM({sizes}), 0) AS b FROM {name}", "useLegacySql": False, "timeoutMs": 60_000}
    answer = engine_call("POST", f"/bigquery/v2/projects/{table['projectId']}/queries", json_body=body)
    if answer.status_code != 200:
        return None
    rows = answer.json().get("rows") or []
    return int(rows[0]["f"][0]["v"]) if rows and rows[0]["f"][0]["v"] is not None else 0


def billed_bytes(per_table: Sequence[int]) -> int:
    return sum(max(MIN_BILLED_PER_TABLE, -(-size // MIB) * MIB) for size in per_table)
