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

Several instances on one schema (see :mod:`monitor.cluster`):

- every write transaction takes one advisory lock first, so transactions that store
  events commit one after another and ``events.seq`` grows in commit order; a reader
  that has seen ``seq`` N has seen every committed event below N, so ``events_after``
  (how an instance catches up with what its peers stored) never misses one;
- ``only_brands`` limits the outbox queries (pending deliveries, retries, held groups,
  repeats) to the brands this instance holds the lease of, so exactly one instance
  delivers each alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec
import psycopg

from monitor.store import (
    SCHEMA,
    Mark,
    PendingDelivery,
    Store,
    StoredEvent,
    _action_decoder,
    _counts_decoder,
    _encoder,
    _kind,
    _post_decoder,
    _snapshot_row,
    event_key,
)
from rules.records import Alert

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

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        statement = translate(sql)
        if statement is not None:
            with self.conn.cursor() as cur:
                cur.executemany(statement.encode(), [tuple(r) for r in rows])  # type: ignore[arg-type]

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
        self.dsn = dsn
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}".encode())
        conn.execute(f"SET search_path TO {schema}".encode())
        self.schema = schema
        self.db = PgConnection(conn)  # type: ignore[assignment]
        # One instance creates the tables at a time (two starting together would race).
        conn.execute(b"SELECT pg_advisory_lock(hashtext('crisismon-schema'))")
        try:
            self.db.executescript(SCHEMA)
            # A schema from before decisions were stored (see monitor.store).
            self.db.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS decision BYTEA")
        finally:
            conn.execute(b"SELECT pg_advisory_unlock(hashtext('crisismon-schema'))")
        self._in_tx = False
        self._alert_seq = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]
        self._init_buffers()
        self.own_seqs: set[int] = set()
        """``events.seq`` of the events this instance stored and has not yet seen again
        in ``events_after`` (they are in its engine already)."""
        self.only_brands: frozenset[str] | None = None
        """When set, the outbox sees only these brands' deliveries (the leases held)."""

    # ------------------------------------------------------------- several instances
    def begin(self) -> None:
        """Start a transaction holding the write lock (see the module docstring)."""
        if not self._in_tx:
            super().begin()
            # Per schema: instances of other deployments (or tests) on the server don't wait.
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))",
                            (f"crisismon-write:{self.schema}",))

    def add_event(self, event: StoredEvent, seen_at: float) -> bool:
        """Stored at once, not buffered: one round trip decides the dedupe and takes the
        seq (peers must see it in seq order, see above)."""
        kind = _kind(event)
        cur = self.db.execute(
            "INSERT OR IGNORE INTO events (key, kind, seen_at, body, decision) "
            "VALUES (?, ?, ?, ?, ?)", (event_key(event), kind, seen_at, _encoder.encode(event),
                                       b"" if kind == "post" else None))
        if cur.rowcount != 1:
            return False
        # lastval(): the seq this session's INSERT just took
        self.own_seqs.add(int(self.db.execute("SELECT lastval()").fetchone()[0]))
        return True

    def expect(self, events: Iterable[StoredEvent]) -> None:
        """Nothing to look up ahead: ``add_event`` asks the server anyway."""

    def mark(self, savepoint: bool = False) -> Mark:
        """Always a real savepoint here: the step's event row is written at once."""
        return super().mark(savepoint=True)

    def max_seq(self) -> int:
        """The newest stored event's ``seq`` (0 when none)."""
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def events_after(self, seq: int) -> list[tuple[int, float, StoredEvent, bytes | None]]:
        """Events stored after ``seq`` (by any instance), oldest first, with seq, seen_at
        and the decision stored with each (``monitor.decision``). Call inside a
        transaction so the view cannot move while it is read."""
        self._write_buffered()
        decoders: dict[str, msgspec.json.Decoder[Any]] = {"post": _post_decoder,
                                                          "action": _action_decoder}
        rows = self.db.execute("SELECT seq, kind, seen_at, body, decision FROM events "
                               "WHERE seq > ? ORDER BY seq", (seq,))
        return [(int(n), seen_at, decoders.get(kind, _counts_decoder).decode(bytes(body)),
                 None if decision is None else bytes(decision))
                for n, kind, seen_at, body, decision in rows]

    # ------------------------------------------------------------- snapshots
    # Peers restore from the snapshots table (a takeover), so a forked snapshot is a row
    # here too, written by the child through a connection of its own (the parent's must
    # not be shared across the fork). Snapshot writes take a lock of their own, not the
    # write lock: the parent's batches go on while the child's tens of MB go in.
    def _snapshot_lock(self, db: PgConnection) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtext(?))",
                   (f"crisismon-snapshot:{self.schema}",))

    def save_snapshot(self, body: bytes, at: float, taken_at: float,
                      keep_for: float = 0.0, seq: int | None = None) -> int:
        self._snapshot_lock(self.db)  # type: ignore[arg-type]
        return super().save_snapshot(body, at, taken_at, keep_for, seq)

    def snapshot_dir(self) -> None:
        return None  # the bodies are rows: a peer on another host reads them

    def forks_snapshots(self) -> bool:
        return True

    def write_snapshot_forked(self, body: bytes, seq: int, at: float, taken_at: float,
                              keep_for: float) -> None:
        """In a forked child: the snapshot row, committed when this returns."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}".encode())
            db = PgConnection(conn)
            with conn.transaction():
                self._snapshot_lock(db)
                _snapshot_row(db, body, at, taken_at, keep_for, seq)  # type: ignore[arg-type]

    def record_snapshot(self, seq: int, at: float, taken_at: float, keep_for: float) -> None:
        """Nothing left to do: the child committed the row itself."""

    # ------------------------------------------------------------- outbox, per brand
    def _brands(self) -> list[str]:
        return sorted(self.only_brands or ())

    def pending_deliveries(self, channel: str, now: float,
                           limit: int = 100) -> list[PendingDelivery]:
        if self.only_brands is None:
            return super().pending_deliveries(channel, now, limit)
        rows = self.db.execute(
            "SELECT a.body, d.attempts, d.rep FROM deliveries d JOIN alerts a "
            "ON a.id = d.alert_id WHERE d.channel = ? AND d.state = 'pending' "
            "AND d.next_try <= ? AND a.brand = ANY(?) ORDER BY a.seq, d.rep LIMIT ?",
            (channel, now, self._brands(), limit))
        return [PendingDelivery(_alert(body), channel, attempts, rep)
                for body, attempts, rep in rows]

    def next_retry(self, channel: str) -> float | None:
        if self.only_brands is None:
            return super().next_retry(channel)
        row = self.db.execute(
            "SELECT MIN(d.next_try) FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.channel = ? AND d.state IN ('pending', 'held') AND a.brand = ANY(?)",
            (channel, self._brands())).fetchone()
        return row[0]

    def due_groups(self, channel: str, now: float) -> list[str]:
        if self.only_brands is None:
            return super().due_groups(channel, now)
        rows = self.db.execute(
            "SELECT d.grp FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.channel = ? AND d.state = 'held' AND a.brand = ANY(?) "
            "GROUP BY d.grp HAVING MIN(d.next_try) <= ?", (channel, self._brands(), now))
        return [r[0] for r in rows]

    def held(self, channel: str, grp: str) -> list[PendingDelivery]:
        if self.only_brands is None:
            return super().held(channel, grp)
        return [p for p in super().held(channel, grp) if p.alert.brand in self.only_brands]

    def due_repeats(self, now: float) -> list[tuple[Alert, int]]:
        if self.only_brands is None:
            return super().due_repeats(now)
        return [(a, n) for a, n in super().due_repeats(now) if a.brand in self.only_brands]

    def next_repeat(self) -> float | None:
        if self.only_brands is None:
            return super().next_repeat()
        row = self.db.execute(
            "SELECT MIN(r.next_at) FROM repeats r JOIN alerts a ON a.id = r.alert_id "
            "WHERE r.done = 0 AND a.brand = ANY(?)", (self._brands(),)).fetchone()
        return row[0]


def _alert(body: str) -> Alert:
    return Alert.from_json(body)


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
