"""The store on PostgreSQL: the same ``Store`` interface, for several instances sharing state.

Why psycopg (sync) and not asyncpg: the pipeline calls the store synchronously inside one
transaction per batch (``with store.transaction(): pipeline.handle(...)``), with no await
between deciding and recording. An async driver would force an ``await`` into every stage
of the pipeline and open windows where a half-processed batch is visible to other
tasks. A synchronous driver on a loopback/LAN server keeps the pipeline unchanged; each
call is a sub-millisecond round trip.

How: ``PgStore`` subclasses the SQLite ``Store``: the two share every method whose SQL
both servers accept (standard SQL, ``INSERT ... ON CONFLICT``, row values; ``?``
placeholders, which the connection below spells ``%s``), and this class replaces what
differs: its own schema (``SCHEMA``, written for PostgreSQL), transactions (``BEGIN`` and
the write lock), events (seq handed back by ``RETURNING``), the leases, and the per-brand
outbox queries. Nothing SQLite-only (``PRAGMA``, ``BEGIN IMMEDIATE``) reaches the server.

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
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec
import psycopg

from monitor.store.sqlite import (
    Mark,
    PendingDelivery,
    PlainPost,
    Store,
    StoredEvent,
    _action_decoder,
    _counts_decoder,
    _due,
    _encoder,
    _kind,
    _post_decoder,
    _snapshot_row,
    event_key,
)
from rules.records import Alert

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    body BYTEA NOT NULL,
    decision BYTEA
);
ALTER TABLE events ADD COLUMN IF NOT EXISTS decision BYTEA;
CREATE TABLE IF NOT EXISTS snapshots (
    seq BIGINT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    taken_at DOUBLE PRECISION NOT NULL,
    body BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    brand TEXT NOT NULL,
    level BIGINT NOT NULL,
    severity TEXT NOT NULL,
    post_id TEXT,
    incident_id TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    rep BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at DOUBLE PRECISION,
    grp TEXT NOT NULL DEFAULT '',
    alert_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, channel, rep)
);
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS alert_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS repeats (
    alert_id TEXT PRIMARY KEY,
    n BIGINT NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL,
    done BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS repeats_due ON repeats (done, next_at);
CREATE INDEX IF NOT EXISTS alerts_at ON alerts (at, id);
CREATE INDEX IF NOT EXISTS alerts_seq ON alerts (seq);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state, next_try);
CREATE INDEX IF NOT EXISTS deliveries_channel ON deliveries (channel, state, next_try);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mentions (
    key TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    post_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    author TEXT NOT NULL,
    followers BIGINT NOT NULL,
    text TEXT NOT NULL,
    sentiment DOUBLE PRECISION NOT NULL,
    negative BIGINT NOT NULL,
    severity TEXT NOT NULL,
    reasons TEXT NOT NULL,
    needs_reply BIGINT NOT NULL,
    replied_at DOUBLE PRECISION,
    replied_by TEXT,
    acked_by TEXT,
    private_resolve_at DOUBLE PRECISION,
    incident_id TEXT
);
CREATE INDEX IF NOT EXISTS mentions_open ON mentions (replied_at, created_at);
CREATE INDEX IF NOT EXISTS mentions_created ON mentions (created_at);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS threads (
    channel TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    sent BIGINT NOT NULL,
    root TEXT NOT NULL,
    ref TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, incident_id)
);
CREATE TABLE IF NOT EXISTS channel_sends (
    channel TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS channel_sends_at ON channel_sends (channel, at);
CREATE TABLE IF NOT EXISTS audit (
    seq BIGSERIAL PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    alert_id TEXT,
    channel TEXT,
    rep BIGINT,
    outcome TEXT NOT NULL,
    detail TEXT,
    who TEXT,
    via TEXT,
    key TEXT UNIQUE,
    alert_seq BIGINT
);
ALTER TABLE audit ADD COLUMN IF NOT EXISTS alert_seq BIGINT;
CREATE INDEX IF NOT EXISTS audit_alert ON audit (alert_id);
CREATE TABLE IF NOT EXISTS leases (
    brand TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""
"""The tables on PostgreSQL: those of ``monitor.store.sqlite.SCHEMA`` (keep the two in step;
``tests/integration/test_store_pg.py`` compares them) plus ``leases``
(``monitor.lease``). The ``ALTER``s: a schema from before decisions were stored, or before
``alert_seq`` (which PostgreSQL fills but never looks rows up by: an instance numbers its
alerts itself, so two instances' seqs may collide; ``PgStore._D_KEY``)."""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgConnection:
    """The part of ``sqlite3.Connection`` the shared store methods use, over psycopg.

    Statements come in written for PostgreSQL, except that those shared with the SQLite
    store mark their parameters ``?``: spelled ``%s`` here (once per statement text)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._spelled: dict[str, bytes] = {}

    def _spell(self, sql: str) -> bytes:
        statement = self._spelled.get(sql)
        if statement is None:
            statement = self._spelled[sql] = sql.replace("?", "%s").encode()
        return statement

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._spell(sql), tuple(params))  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._spell(sql), [tuple(r) for r in rows])  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()


class PgStore(Store):
    """``Store`` on PostgreSQL. Not thread-safe; one per event loop (like the SQLite one)."""

    _D_KEY = "alert_id = ?"  # (see the SCHEMA's note on alert_seq)
    _D_JOIN = "a.id = d.alert_id"
    _BY_SEQ = False

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
            conn.execute(SCHEMA.encode())  # no parameters: the statements go as one script
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

    @staticmethod
    def _alert_body(alert: Alert) -> str | bytes:
        """As text: PostgreSQL would take bytes as ``bytea``, whose cast to text is hex."""
        return alert.to_json()

    # ------------------------------------------------------------- several instances
    def begin(self) -> None:
        """Start a transaction holding the write lock (see the module docstring)."""
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True
            # Per schema: instances of other deployments (or tests) on the server don't wait.
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                            (f"crisismon-write:{self.schema}",))

    def add_event(self, event: StoredEvent, seen_at: float) -> bool:
        """Stored at once, not buffered: one round trip decides the dedupe and takes the
        seq (peers must see it in seq order, see above)."""
        kind = _kind(event)
        row = self.db.execute(
            "INSERT INTO events (key, kind, seen_at, body, decision) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING RETURNING seq",
            (event_key(event), kind, seen_at, _encoder.encode(event),
             b"" if kind == "post" else None)).fetchone()
        if row is None:
            return False
        self.own_seqs.add(int(row[0]))
        return True

    def add_plain(self, post: PlainPost, seen_at: float) -> bool:
        """As the whole post (a replay's own store is SQLite: not a path taken today)."""
        return self.add_event(self.pending_post(post.id), seen_at)

    def expect(self, events: Iterable[StoredEvent | PlainPost]) -> None:
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
                               "WHERE seq > %s ORDER BY seq", (seq,))
        return [(int(n), seen_at, decoders.get(kind, _counts_decoder).decode(bytes(body)),
                 None if decision is None else bytes(decision))
                for n, kind, seen_at, body, decision in rows]

    # ------------------------------------------------------------- snapshots
    # Peers restore from the snapshots table (a takeover), so a forked snapshot is a row
    # here too, written by the child through a connection of its own (the parent's must
    # not be shared across the fork). Snapshot writes take a lock of their own, not the
    # write lock: the parent's batches go on while the child's tens of MB go in.
    def _snapshot_lock(self, db: PgConnection) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
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

    # ------------------------------------------------------------- brand leases
    def take_lease(self, brand: str, owner: str, expires_at: float, now: float) -> bool:
        """Hold ``brand``'s lease until ``expires_at`` if it is ``owner``'s already, free,
        or expired at ``now``; True if ``owner`` holds it. One statement: PostgreSQL
        serialises the upserts on the row, so two owners never both hold it."""
        row = self.db.execute(
            "INSERT INTO leases (brand, owner, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (brand) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at "
            "WHERE leases.owner = excluded.owner OR leases.expires_at <= %s "
            "RETURNING brand", (brand, owner, expires_at, now)).fetchone()
        return row is not None

    def release_leases(self, owner: str) -> None:
        """Drop every lease ``owner`` holds."""
        self.db.execute("DELETE FROM leases WHERE owner = %s", (owner,))

    def server_now(self) -> float:
        """The database server's time (epoch seconds): what lease expiry is measured in."""
        row = self.db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
        return float(row.fetchone()[0])

    def lease_owners(self) -> dict[str, str]:
        """Brand -> the instance holding (or last holding) its lease."""
        return {brand: owner for brand, owner in self.db.execute(
            "SELECT brand, owner FROM leases")}

    # ------------------------------------------------------------- SQLite upkeep: none
    def wait_when_locked(self, ms: int) -> None:
        """Nothing to set: a PostgreSQL writer waits on the row and advisory locks."""

    def in_wal_mode(self) -> bool:
        """No SQLite log to checkpoint (the server runs its own)."""
        return False

    def auto_checkpoint(self, pages: int) -> None:
        """Nothing to set (see ``in_wal_mode``)."""

    def checkpoint(self) -> None:
        """Nothing to fold back (see ``in_wal_mode``)."""

    def wal_log_bytes(self) -> int:
        """SQLite's write-ahead log only (``Checkpointer.applies``): none here."""
        return 0

    def wal_bytes(self) -> int:
        """No SQLite log (see ``in_wal_mode``)."""
        return 0

    def finish_checkpoint(self) -> bool:
        """Nothing to fold back (see ``in_wal_mode``)."""
        return False

    # ------------------------------------------------------------- outbox, per brand
    def _brands(self) -> list[str]:
        return sorted(self.only_brands or ())

    def pending_deliveries(self, channel: str, now: float, limit: int = 100,
                           skip: Collection[tuple[str, int]] = (),
                           skip_upto: int = 0) -> list[PendingDelivery]:
        if self.only_brands is None:
            return super().pending_deliveries(channel, now, limit, skip, skip_upto)
        rows = self.db.execute(
            "SELECT a.id, CASE WHEN a.seq > %s THEN a.body END, d.attempts, d.rep, a.seq "
            "FROM deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.channel = %s "
            "AND d.state = 'pending' AND d.next_try <= %s AND a.brand = ANY(%s) "
            "ORDER BY a.seq, d.rep LIMIT %s",
            (skip_upto if skip else -1, channel, now, self._brands(), limit + len(skip)))
        return _due(rows, channel, limit, skip, _alert, self._body)

    def next_retry(self, channel: str) -> float | None:
        if self.only_brands is None:
            return super().next_retry(channel)
        row = self.db.execute(
            "SELECT MIN(d.next_try) FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.channel = %s AND d.state IN ('pending', 'held') AND a.brand = ANY(%s)",
            (channel, self._brands())).fetchone()
        return row[0]

    def due_groups(self, channel: str, now: float) -> list[str]:
        if self.only_brands is None:
            return super().due_groups(channel, now)
        rows = self.db.execute(
            "SELECT d.grp FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.channel = %s AND d.state = 'held' AND a.brand = ANY(%s) "
            "GROUP BY d.grp HAVING MIN(d.next_try) <= %s", (channel, self._brands(), now))
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
            "WHERE r.done = 0 AND a.brand = ANY(%s)", (self._brands(),)).fetchone()
        return row[0]


def _alert(body: str) -> Alert:
    return Alert.from_json(body)


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a schema and everything in it (tests)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())
