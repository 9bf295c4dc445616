"""A store update carries the key and the columns that changed since the row was read; a row not read, every column."""

from __future__ import annotations

from baton.adapters.spanner_rows import changed_columns

COLUMNS = ("RunId", "JobKey", "Status", "PendingUpstreams", "Error")


def test_rows_are_cut_to_their_key_and_changes_and_grouped_by_the_columns_written() -> None:
    rows = [
        (["r", "a", "SUCCEEDED", 0, None], ["r", "a", "SUBMITTED", 0, None]),
        (["r", "b", "PENDING", 2, None], ["r", "b", "PENDING", 3, None]),
        (["r", "c", "PENDING", 4, None], ["r", "c", "PENDING", 5, None]),
        (["r", "d", "READY", 0, None], None),
    ]
    assert changed_columns(COLUMNS, 2, rows) == [
        (("RunId", "JobKey", "Status"), [["r", "a", "SUCCEEDED"]]),
        (("RunId", "JobKey", "PendingUpstreams"), [["r", "b", 2], ["r", "c", 4]]),
        (COLUMNS, [["r", "d", "READY", 0, None]]),
    ]


def test_a_row_put_back_unchanged_still_writes_its_key() -> None:
    assert changed_columns(COLUMNS, 2, [(["r", "a", "READY", 0, None], ["r", "a", "READY", 0, None])]) == [
        (("RunId", "JobKey"), [["r", "a"]])
    ]
