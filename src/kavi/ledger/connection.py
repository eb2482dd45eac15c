"""One connection helper for both ledger backends, below the ORM: SQLite through the standard library,
PostgreSQL through psycopg 3.

The audit, the lock, attestations, `kavi run-skill`'s fast path and the Python API read and write the ledger
with the named statements of :mod:`kavi.ledger.queries` through a :class:`LedgerConnection`. Statements are
written once, with ``?`` placeholders; the Postgres connection translates them. Nothing here imports more
than the standard library at module level: the hot run path on SQLite must not pay for psycopg (or the ORM).

Transactions are explicit and have two shapes. :meth:`LedgerConnection.writing` serialises writers: SQLite's
``BEGIN IMMEDIATE`` takes the database's write lock, Postgres takes the transaction-scoped advisory lock
:data:`WRITE_LOCK_KEY` (the ORM's transactions in :mod:`kavi.ledger.store` take the same one), so the chain
head read by an event append cannot move before the commit; the unique constraints on ``events`` stay as the
backstop. :meth:`LedgerConnection.snapshot` reads one consistent state while others write (SQLite's deferred
``BEGIN`` in WAL mode, Postgres's ``REPEATABLE READ READ ONLY``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kavi.errors import LedgerError

SQLITE = "sqlite"
POSTGRES = "postgresql"
SQLITE_PREFIX = "sqlite:///"
# How a user may spell a Postgres URL in `[ledger] url`; SQLAlchemy needs its driver named, libpq must not.
POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
BUSY_TIMEOUT_S = 30.0
# pg_advisory_xact_lock's key for "this transaction may write the ledger": b"kavi" as an integer.
WRITE_LOCK_KEY = 0x6B617669

Params = Sequence[Any]


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``; any other URL is refused with the two that work."""
    if url.startswith(SQLITE_PREFIX):
        return SQLITE
    if url.startswith(POSTGRES_SCHEMES):
        return POSTGRES
    raise LedgerError(
        f"unsupported ledger URL {safe_url(url)}",
        hint='[ledger] url takes a SQLite path (".kavi/ledger.db") or "postgresql://user@host/database"',
    )


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg) reads it: ``postgresql://...`` with no SQLAlchemy driver suffix."""
    for scheme in POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url.removeprefix(scheme)
    return url


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy reads it: Postgres through psycopg 3, whichever way the user spelled it."""
    if backend_of(url) == POSTGRES:
        return "postgresql+psycopg://" + libpq_url(url).removeprefix("postgresql://")
    return url


def sqlite_path(url: str) -> Path | None:
    """The SQLite file a URL names, or None for a server."""
    return Path(url.removeprefix(SQLITE_PREFIX)) if url.startswith(SQLITE_PREFIX) else None


def safe_url(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user + ':***' if ':' in credentials else user}@{host}"
    return url


class LedgerConnection:
    """A DB-API connection with kavi's two transaction shapes and ``?`` placeholders on both backends."""

    backend: str = SQLITE

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; the result iterates rows as tuples and has ``fetchone``/``fetchall``."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        raise NotImplementedError

    def mappings(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name (for the few readers that want names, not positions)."""
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def mapping(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self.mappings(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- transactions -------------------------------------------------------------------------------------

    def begin_write(self) -> None:
        raise NotImplementedError

    def begin_snapshot(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    @contextmanager
    def writing(self) -> Iterator[LedgerConnection]:
        """One serialised write transaction: everything inside commits together or not at all."""
        self.begin_write()
        try:
            yield self
            self.commit()
        except BaseException:
            self.rollback()
            raise

    @contextmanager
    def snapshot(self) -> Iterator[LedgerConnection]:
        """One consistent read of the whole ledger while other processes write."""
        self.begin_snapshot()
        try:
            yield self
        finally:
            self.rollback()

    def __enter__(self) -> LedgerConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class SqliteConnection(LedgerConnection):
    backend = SQLITE

    def __init__(self, path: Path) -> None:
        self.raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.raw.execute("PRAGMA foreign_keys = ON")
        self.raw.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # As kavi.ledger.store sets it for every other write: in WAL mode a commit is atomic and survives a crash
        # of the process (kill -9); only a power loss may roll back the last commits. FULL would fsync every
        # run's record (15-25 ms on a busy disk, more than a warm run costs).
        self.raw.execute("PRAGMA synchronous = NORMAL")

    def execute(self, sql: str, params: Params = ()) -> Any:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger refused a statement: {exc}") from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise LedgerError(f"the ledger refused a statement: {exc}") from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def close(self) -> None:
        self.raw.close()

    def begin_write(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def begin_snapshot(self) -> None:
        self.execute("BEGIN")


class PostgresConnection(LedgerConnection):
    backend = POSTGRES

    def __init__(self, url: str) -> None:
        import psycopg

        self._errors = psycopg.Error
        self._undefined_table = psycopg.errors.UndefinedTable
        try:
            # autocommit: kavi's own BEGIN/COMMIT delimit transactions, as with SQLite's isolation_level=None
            self.raw = psycopg.connect(
                libpq_url(url), autocommit=True, options=f"-c lock_timeout={int(BUSY_TIMEOUT_S * 1000)}"
            )
        except psycopg.Error as exc:
            raise LedgerError(
                f"cannot connect to the ledger at {safe_url(url)}: {str(exc).strip()}",
                hint="check [ledger] url in kavi.toml and that the server is up",
            ) from None
        self._translated: dict[str, str] = {}

    def _sql(self, sql: str) -> str:
        """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled), translated once per statement."""
        translated = self._translated.get(sql)
        if translated is None:
            translated = self._translated[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def execute(self, sql: str, params: Params = ()) -> Any:
        try:
            return self.raw.execute(self._sql(sql) if params else sql, params or None)
        except self._undefined_table as exc:
            raise LedgerError(
                f"the database has no kavi ledger yet ({str(exc).strip()})", hint="run `kavi init` to create it"
            ) from exc
        except self._errors as exc:
            raise LedgerError(f"the ledger refused a statement: {str(exc).strip()}") from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        except self._errors as exc:
            raise LedgerError(f"the ledger refused a statement: {str(exc).strip()}") from exc

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

    def begin_write(self) -> None:
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))

    def begin_snapshot(self) -> None:
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def connect(url: str) -> LedgerConnection:
    """A connection to the ledger at ``url`` (a SQLite file must exist: only `kavi init` and the stages,
    through the ORM, create one)."""
    if backend_of(url) == POSTGRES:
        return PostgresConnection(url)
    path = sqlite_path(url)
    assert path is not None  # backend_of said SQLite
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}: nothing has been promoted here", hint="run `kavi status`")
    return SqliteConnection(path)
