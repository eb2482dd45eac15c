"""Copying a SQLite ledger into an empty database (`kavi ledger migrate --to postgresql://...`).

Every row of every table the migrations made is copied as it is, events included with their ids, hashes and
timestamps, so the copy's hash chain is the original's and `kavi audit` on the copy checks what it checked
before. Both ledgers are first brought to the current schema (opening a ledger migrates it). The target
must be empty: copying into a ledger that already has a history would interleave two chains. The copy is
one transaction on the target: it lands whole or not at all.

Rows go in the source's insertion order (SQLite's ``rowid``), which satisfied the foreign keys when they were
written (kavi's SQLite runs with ``foreign_keys = ON``); that order is what lets a build name its parent.
Artifacts' bytes stay where they are (the workspace's artifact store); their rows are copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, inspect

from kavi.errors import LedgerError
from kavi.ledger import queries
from kavi.ledger.chain import GENESIS
from kavi.ledger.connection import POSTGRES, SQLITE, backend_of, connect, safe_url
from kavi.ledger.store import Ledger

BATCH_ROWS = 5000
NOT_COPIED = ("migrations",)  # each ledger records the migrations it applied itself


@dataclass
class LedgerCopy:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    head: str = ""
    events: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "rows": self.rows,
            "head": self.head,
            "events": self.events,
        }


def copy_ledger(source_url: str, target_url: str) -> LedgerCopy:
    """Copy the SQLite ledger at ``source_url`` into the empty ledger at ``target_url``."""
    if backend_of(source_url) != SQLITE:
        raise LedgerError(
            f"the ledger to copy must be a SQLite file, not {safe_url(source_url)}",
            hint="run `kavi ledger migrate` in a workspace whose [ledger] url is a SQLite path",
        )
    if source_url == target_url:
        raise LedgerError("the target is the workspace's own ledger", hint="name another database with --to")
    tables, booleans = _schema(source_url, target_url)
    result = LedgerCopy(safe_url(source_url), safe_url(target_url))
    with connect(source_url) as source, connect(target_url) as target:
        with source.snapshot(), target.writing():
            _refuse_non_empty(target, tables, target_url)
            for table in tables:
                result.rows[table] = _copy_table(source, target, table, booleans.get(table, set()))
            if target.backend == POSTGRES:
                for table, column in target.execute(queries.SERIAL_COLUMNS).fetchall():
                    if table in tables:
                        target.execute(queries.RESET_SERIAL.format(table=table, column=column))
        copied_head = tuple(target.execute(queries.LAST_EVENT).fetchone() or (0, GENESIS))
        source_head = tuple(source.execute(queries.LAST_EVENT).fetchone() or (0, GENESIS))
    if copied_head != source_head:
        raise LedgerError("the copy's chain head differs from the source's", hint="run `kavi audit` on both")
    result.events, result.head = int(copied_head[0]), str(copied_head[1])
    return result


def _schema(source_url: str, target_url: str) -> tuple[list[str], dict[str, set[str]]]:
    """Both ledgers migrated to the current schema; the tables to copy in foreign-key order; and, per table,
    the target's boolean columns (SQLite stores them as 0 and 1, Postgres will not cast those implicitly)."""
    source = Ledger.open(source_url, create=False)
    try:
        ordered = [name for name, _ in inspect(source.engine).get_sorted_table_and_fkc_names() if name]
    finally:
        source.close()
    target = Ledger.open(target_url)
    try:
        inspector = inspect(target.engine)
        present = set(inspector.get_table_names())
        tables = [name for name in ordered if name not in NOT_COPIED]
        missing = [name for name in tables if name not in present]
        if missing:
            raise LedgerError(f"the target ledger has no table {', '.join(missing)}", hint="upgrade kavi there")
        booleans = {
            table: {c["name"] for c in inspector.get_columns(table) if isinstance(c["type"], Boolean)}
            for table in tables
        }
    finally:
        target.close()
    return tables, booleans


def _refuse_non_empty(target: Any, tables: list[str], target_url: str) -> None:
    filled = {table: n for table in tables if (n := int(target.scalar(queries.COUNT_ALL.format(table=table))))}
    if filled:
        held = ", ".join(f"{n} {table}" for table, n in sorted(filled.items()))
        raise LedgerError(
            f"the target ledger at {safe_url(target_url)} is not empty ({held}); a ledger is copied only into"
            " an empty database",
            hint="create a new database (e.g. `createdb kavi_team`) and migrate into it",
        )


def _copy_table(source: Any, target: Any, table: str, booleans: set[str]) -> int:
    cursor = source.execute(queries.ROWS_IN_INSERTION_ORDER.format(table=table))
    columns = [column[0] for column in cursor.description]
    flags = [index for index, name in enumerate(columns) if name in booleans]
    insert = queries.INSERT_ROW.format(table=table, columns=", ".join(columns), marks=", ".join("?" for _ in columns))
    copied = 0
    while batch := cursor.fetchmany(BATCH_ROWS):
        if flags:
            batch = [_with_booleans(row, flags) for row in batch]
        target.executemany(insert, batch)
        copied += len(batch)
    return copied


def _with_booleans(row: tuple[Any, ...], flags: list[int]) -> tuple[Any, ...]:
    values = list(row)
    for index in flags:
        if values[index] is not None:
            values[index] = bool(values[index])
    return tuple(values)
