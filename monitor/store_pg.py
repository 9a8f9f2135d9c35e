"""The store on PostgreSQL: the same ``Store`` interface, for several instances sharing state.

Why psycopg (sync) and not asyncpg: the pipeline calls the store synchronously inside one
transaction per batch (``with store.transaction(): pipeline.handle(...)``), with no await
between deciding and recording. An async driver would force an ``await`` into every stage
of the pipeline and open windows where a half-processed batch is visible to other
tasks. A synchronous driver on a loopback/LAN server keeps the pipeline unchanged; each
call is a sub-millisecond round trip.

How: ``PgStore`` subclasses the SQLite ``Store`` and replaces only its connection with a
thin adapter that speaks the small SQLite dialect the store (and the modules that share
``store.db``: audit log, API, dashboard) use: ``?`` placeholders, ``INSERT OR IGNORE``,
``BEGIN IMMEDIATE``, ``PRAGMA`` and SQLite column types. Every method the SQLite store
has, this one has too, with the same SQL, so the two cannot drift apart.

Each instance's tables live in one schema (``[store] schema``), so tests and
deployments can share a database without sharing state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from monitor.store import SCHEMA, Store

_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_DDL_TYPES = [
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def translate(sql: str) -> str | None:
    """One SQLite statement as PostgreSQL; None for statements with no meaning there."""
    text = sql.strip().rstrip(";")
    upper = text.upper()
    if upper.startswith("PRAGMA"):
        return None
    if upper == "BEGIN IMMEDIATE":
        return "BEGIN"
    if upper.startswith("CREATE TABLE"):
        for pattern, replacement in _DDL_TYPES:
            text = pattern.sub(replacement, text)
    if _OR_IGNORE.match(text):
        text = _OR_IGNORE.sub("INSERT INTO", text) + " ON CONFLICT DO NOTHING"
    return text.replace("?", "%s")


class _NoRows:
    rowcount = 0

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class PgConnection:
    """The part of ``sqlite3.Connection`` the store uses, over a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        statement = translate(sql)
        if statement is None:
            return _NoRows()
        return self.conn.execute(statement.encode(), tuple(params))  # type: ignore[arg-type]

    def executescript(self, script: str) -> None:
        for part in script.split(";"):
            if part.strip():
                self.execute(part)

    def close(self) -> None:
        self.conn.close()


class PgStore(Store):
    """``Store`` on PostgreSQL. Not thread-safe; one per event loop (like the SQLite one)."""

    def __init__(self, dsn: str, schema: str = "crisismon") -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f'store.schema "{schema}" must be a lower-case SQL identifier')
        self.path = f"postgres:{schema}"
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}".encode())
        conn.execute(f"SET search_path TO {schema}".encode())
        self.schema = schema
        self.db = PgConnection(conn)  # type: ignore[assignment]
        # One instance creates the tables at a time (two starting together would race).
        conn.execute(b"SELECT pg_advisory_lock(hashtext('crisismon-schema'))")
        try:
            self.db.executescript(SCHEMA)
        finally:
            conn.execute(b"SELECT pg_advisory_unlock(hashtext('crisismon-schema'))")
        self._in_tx = False
        self._alert_seq = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
