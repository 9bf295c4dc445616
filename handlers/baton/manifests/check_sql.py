"""Data checks ("trust rules"): each compiles to one query that returns no rows when the check passes.

Every check runs as a BigQuery job of its own once its job has succeeded, and its
verdict is read from its own completion event: `outputRowCount` 0 means it passed.
So a named check returns the offending rows (at most `ROW_LIMIT`), and raw SQL is
wrapped the same way. Values never get pasted into SQL: accepted values travel as
query parameters, identifiers are validated before they are quoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from baton.domain.specs import ParamValue

COLUMN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
# Offending rows a failing check returns (and reports): enough to see what is wrong, cheap to write.
ROW_LIMIT = 100
# Prefix of the query parameters checks add; manifests may not declare params with it.
PARAM_PREFIX = "baton_"


def quote_table(table: str) -> str:
    """`dataset.table` or `project.dataset.table`, already validated, as one quoted path."""
    return f"`{table}`"


def quote_column(column: str) -> str:
    if not COLUMN_PATTERN.fullmatch(column):
        raise ValueError(f"'{column}' is not a column name")
    return f"`{column}`"


def strip_statement(sql: str) -> str:
    """User SQL as a subquery: trailing semicolons and blank space go."""
    return sql.strip().rstrip(";").rstrip()


def not_null(table: str, column: str) -> str:
    col = quote_column(column)
    return f"SELECT {col} FROM {quote_table(table)} WHERE {col} IS NULL LIMIT {ROW_LIMIT}"


def unique(table: str, columns: Sequence[str]) -> str:
    """Duplicated combinations; like a SQL UNIQUE constraint, rows with a NULL in any column are not compared."""
    cols = [quote_column(c) for c in columns]
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    listed = ", ".join(cols)
    return (
        f"SELECT {listed}, COUNT(*) AS duplicates FROM {quote_table(table)} WHERE {present} "
        f"GROUP BY {listed} HAVING COUNT(*) > 1 LIMIT {ROW_LIMIT}"
    )


def accepted_values(table: str, column: str, values: Sequence[ParamValue]) -> tuple[str, dict[str, ParamValue]]:
    """Values outside the list (NULLs are not_null's business). The list travels as query parameters."""
    col = quote_column(column)
    params = {f"{PARAM_PREFIX}accepted_{index}": value for index, value in enumerate(values)}
    listed = ", ".join(f"@{name}" for name in params)
    sql = f"SELECT {col} FROM {quote_table(table)} WHERE {col} IS NOT NULL AND {col} NOT IN ({listed}) LIMIT {ROW_LIMIT}"
    return sql, params


def row_count_above(table: str, minimum: int) -> str:
    return f"SELECT row_count FROM (SELECT COUNT(*) AS row_count FROM {quote_table(table)}) WHERE row_count <= {int(minimum)}"


def relationships(table: str, column: str, to: str, field: str) -> str:
    """Values of `column` with no match in `to`.`field` (NULLs are not_null's business), as dbt's relationships test."""
    col, ref = quote_column(column), quote_column(field)
    return (
        f"SELECT child.{col} FROM {quote_table(table)} AS child LEFT JOIN {quote_table(to)} AS parent "
        f"ON child.{col} = parent.{ref} WHERE child.{col} IS NOT NULL AND parent.{ref} IS NULL LIMIT {ROW_LIMIT}"
    )


def tables_read(sql: str, tables: Iterable[str]) -> list[str]:
    """Which of `tables` a query names, quoted or not: how a check that reads other jobs' outputs is found.

    A table given with its project also matches as `dataset.table` (the job's default project).
    """
    text = sql.replace("`", "")
    found = []
    for table in tables:
        forms = {table, table.split(".", 1)[1]} if table.count(".") == 2 else {table}
        if any(re.search(rf"(?<![\w.-]){re.escape(form)}(?![\w-])", text) for form in forms):
            found.append(table)
    return found


def returns_no_rows(sql: str) -> str:
    # The newline before ')' keeps a trailing `--` comment from swallowing it.
    return f"SELECT * FROM (\n{strip_statement(sql)}\n) LIMIT {ROW_LIMIT}"


def is_true(sql: str) -> str:
    """A boolean expression, or a SELECT of one boolean (a scalar subquery once parenthesised).

    NULL counts as false. BigQuery refuses WHERE without FROM, hence the one-row subquery.
    """
    return f"SELECT ok FROM (SELECT (\n{strip_statement(sql)}\n) AS ok) WHERE NOT COALESCE(ok, FALSE)"
