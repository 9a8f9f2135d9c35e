"""Durable state in SQLite (WAL): the events seen, the alerts raised, deliveries, cursors.

``Store`` is also the interface: ``monitor.store.postgres.PgStore`` shares every method
whose SQL both servers accept and replaces the rest (see there).

Events are the truth, with what was decided about each (``events.decision``): on restart
the engine is restored from its newest snapshot (``snapshots``, written in the transaction
of the events it covers) and fed the events stored after it, which re-arms every pending
deadline exactly as it was. Alerts are keyed by their stable id, so an alert raised again
during a rebuild is recognised and never sent twice. Mentions and incidents are kept as
projections for the dashboard and reports; they are never read back to rebuild state.
Old rows are deleted by the retention (``prune_*``), in chunks.

One batch = one transaction: the events of a batch, the cursor that fetched them and the
alerts they raised are committed together, so a post is stored before its cursor
advances and an alert is in the outbox before anything tries to send it.

Inside a transaction, new events, alerts and deliveries are buffered and written with one
``executemany`` each when the transaction commits (or anything reads them back): one
statement per row and a savepoint per event cost more than the rest of the pipeline. The
failure unit stays one event: ``mark`` / ``undo`` drop exactly the rows an event added
(see ``Pipeline.handle``). The projections (mentions, incidents) are written by the
``on_flush`` hooks at the same moment, once per batch instead of once per change.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, final

import msgspec
import structlog

from rules.records import Action, Alert, Event, Post

if TYPE_CHECKING:
    from monitor.store.behind import WriteBehind

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    seen_at REAL NOT NULL,
    body BLOB NOT NULL,
    decision BLOB
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    taken_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    type TEXT NOT NULL,
    brand TEXT NOT NULL,
    level INTEGER NOT NULL,
    severity TEXT NOT NULL,
    post_id TEXT,
    incident_id TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    rep INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL,
    grp TEXT NOT NULL DEFAULT '',
    alert_seq INTEGER NOT NULL,
    PRIMARY KEY (alert_seq, channel, rep)
);
CREATE TABLE IF NOT EXISTS repeats (
    alert_id TEXT PRIMARY KEY,
    n INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
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
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    author TEXT NOT NULL,
    followers INTEGER NOT NULL,
    text TEXT NOT NULL,
    sentiment REAL NOT NULL,
    negative INTEGER NOT NULL,
    severity TEXT NOT NULL,
    reasons TEXT NOT NULL,
    needs_reply INTEGER NOT NULL,
    replied_at REAL,
    replied_by TEXT,
    acked_by TEXT,
    private_resolve_at REAL,
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
    sent INTEGER NOT NULL,
    root TEXT NOT NULL,
    ref TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (channel, incident_id)
);
CREATE TABLE IF NOT EXISTS channel_sends (
    channel TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS channel_sends_at ON channel_sends (channel, at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    alert_id TEXT,
    channel TEXT,
    rep INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT,
    who TEXT,
    via TEXT,
    key TEXT UNIQUE,
    alert_seq INTEGER
);
CREATE INDEX IF NOT EXISTS audit_alert_seq ON audit (alert_seq);
"""
# alerts_seq: the store's open reads MAX(seq), a scan of every alert without it (0.56 s per
# million). events.decision: what the pipeline decided about a post when it first saw it
# (``monitor.decision``): empty for most posts, NULL for actions and for rows stored before
# decisions were. snapshots: the engine's state as of events.seq (``save_snapshot``).
# threads, channel_sends: the outbox's memory of incident threads and rate-limit windows,
# read and written by alerts.ledger. audit: every delivery attempt and every ack or resolve
# (alerts.audit).
# deliveries and audit are found by their alert's ``seq`` (``alert_seq``), not its id: alert
# ids are hashes, so an index on them takes each new row on a page of its own, and as it
# outgrew the page cache every commit wrote (and every checkpoint copied) one more page per
# row: a 5,000 posts/s run's store CPU per alert rose by a half within a minute. ``seq``
# grows with every alert, so new rows land on the last pages. ``alert_id`` is still kept in
# each row (readers, and PostgreSQL, whose alert seqs are per instance, use it).

BULK_INDEXES = ("alerts_at", "alerts_seq", "mentions_open", "mentions_created")
"""The secondary indexes of the tables a replay fills by the hundred thousand rows, which its
write-behind store builds once they are in (``WriteBehind.hold_indexes``)."""

_encoder = msgspec.json.Encoder()
_post_decoder = msgspec.json.Decoder(Post)
_action_decoder = msgspec.json.Decoder(Action)


WAL_KEEP_BYTES = 64 * 1024 * 1024
"""What the write-ahead log file is cut back to when it starts again (``journal_size_limit``)."""


def _pragmas(durable: bool) -> list[str]:
    """A store connection's settings, in order (``durable``: see ``Store.__init__``)."""
    pragmas = []
    if not durable:
        # A bulk load of mostly blobs and text (~500 bytes a row): larger pages and a
        # cache that holds a whole transaction's pages wrote the 100,000-post day's
        # rows in 0.44 s instead of 0.52 s. ``page_size`` only takes on a new file,
        # which a non-durable store is (the replay deletes it first).
        pragmas += ["PRAGMA page_size=16384", "PRAGMA cache_size=-65536"]
    return [
        *pragmas,
        # Not durable (the replay's own database): no write-ahead log either, whose pages
        # are written twice (log, then checkpoint); the rollback journal is kept in
        # memory. Its commits took ~0.8 s instead of ~1.1 s for a 100,000-post day.
        "PRAGMA journal_mode=WAL" if durable else "PRAGMA journal_mode=MEMORY",
        # NORMAL is durable across a process crash (kill -9) in WAL mode; only a power
        # loss can drop the last transactions, which the pollers then fetch again.
        "PRAGMA synchronous=NORMAL" if durable else "PRAGMA synchronous=OFF",
        # Debian's SQLite (and others) build with SECURE_DELETE: every page a delete
        # freed was zeroed and written to the log, so the retention's deletes wrote ~150
        # MB of log a second (a 300k-post pass: GBs) that the checkpoints then copied
        # back. FAST zeroes deleted content only where that costs no extra page write
        # (b-tree pages yes, freed pages no: reused by new rows, or given back by VACUUM).
        "PRAGMA secure_delete=FAST",
        # The log is cut back to this size whenever it starts again (``finish_checkpoint``).
        f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}",
        "PRAGMA busy_timeout=5000",
    ]


@dataclass(frozen=True, slots=True)
class CountsSeen:
    """A known post seen again with new counters (its repost growth is spread)."""

    post_id: str
    reposts_count: int


StoredEvent = Event | CountsSeen
_counts_decoder = msgspec.json.Decoder(CountsSeen)


@final
class PlainPost(NamedTuple):
    """A post the replay's feed reader found plain (it names no brand, no official account
    wrote it, it answers no post), handed over without its fields: the store keeps its
    body, encoded by the reader (``Store.encoded``), and nothing else about it is read.
    A mention-heavy day's plain posts (two thirds of it) cost the replay's process ~0.11 s
    to decode whole. Anything but storing it first time takes the whole post
    (``Store.pending_post``). A named tuple, not a Struct: it crosses the reader's pipe in
    one list with the ``Post`` structs, as an array beside their maps."""

    id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    alert: Alert
    channel: str
    attempts: int
    rep: int = 0
    """0 for the page itself, n for its n-th repeat (see ``alerts.outbox``)."""
    seq: int = 0
    """The alert's ``seq`` (0: not known), by which the store finds its rows."""


def _due(rows: Iterable[tuple[str, Any, int, int, int]], channel: str, limit: int,
         skip: Collection[tuple[str, int]], decode: Callable[[Any], Alert],
         body_of: Callable[[str], Any],
         recent: Mapping[str, tuple[int, Alert]] | None = None) -> list[PendingDelivery]:
    """``pending_deliveries``' rows ``(alert id, body or None, attempts, rep, seq)`` as
    deliveries, those in ``skip`` passed over, ``limit`` at most (a body not read with
    its row is fetched by the alert's id: unique on both backends, where PostgreSQL's
    seqs are per instance and may collide). ``recent``: alerts this store recorded
    lately, by id, used as they are instead of decoding their stored body again."""
    due: list[PendingDelivery] = []
    for aid, body, attempts, rep, seq in rows:
        if skip and (aid, rep) in skip:
            continue
        held = recent.get(aid) if recent is not None else None
        alert = held[1] if held is not None else decode(
            body if body is not None else body_of(aid))
        due.append(PendingDelivery(alert, channel, attempts, rep, seq))
        if len(due) >= limit:
            break
    return due


def _migrate_events(db: sqlite3.Connection) -> None:
    """Give an ``events`` table from before decisions its ``decision`` column (NULL: the
    rows it holds are decided when a rebuild first reads them)."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(events)")]
    if cols and "decision" not in cols:
        db.execute("ALTER TABLE events ADD COLUMN decision BLOB")


def _migrate_deliveries(db: sqlite3.Connection) -> None:
    """Move a deliveries table from before ``alert_seq`` (or before repeats) aside, as
    ``deliveries_old``, whose rows ``_copy_deliveries`` copies once the new one exists."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(deliveries)")]
    if not cols or "alert_seq" in cols:
        return
    with _atomic(db):
        # Index names are the database's, not the table's: free them for the new table.
        db.execute("DROP INDEX IF EXISTS deliveries_pending")
        db.execute("DROP INDEX IF EXISTS deliveries_channel")
        db.execute("ALTER TABLE deliveries RENAME TO deliveries_old")


_DELIVERY_COPY = ("alert_id", "channel", "rep", "state", "attempts", "next_try", "last_error",
                  "delivered_at", "grp")


def _copy_deliveries(db: sqlite3.Connection) -> None:
    """Copy the rows of a table ``_migrate_deliveries`` moved aside (this start, or one
    stopped half-way) into the new one, each with its alert's seq (a row whose alert is
    gone: minus its rowid, still unique), and drop it; all or nothing."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(deliveries_old)")]
    if not cols:
        return
    copied = [c for c in _DELIVERY_COPY if c in cols]
    with _atomic(db):
        db.execute(f"INSERT INTO deliveries ({', '.join(copied)}, alert_seq) SELECT "
                   f"{', '.join('d.' + c for c in copied)}, COALESCE(a.seq, -d.rowid) FROM "
                   "deliveries_old d LEFT JOIN alerts a ON a.id = d.alert_id")
        db.execute("DROP TABLE deliveries_old")


@contextmanager
def _atomic(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction on a connection in autocommit mode (a migration's steps)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate_audit(db: sqlite3.Connection) -> None:
    """Give an ``audit`` table from before ``alert_seq`` the column, filled from the alerts
    (through the old index on ``alert_id``, dropped after)."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(audit)")]
    if not cols or "alert_seq" in cols:
        return
    with _atomic(db):
        db.execute("ALTER TABLE audit ADD COLUMN alert_seq INTEGER")
        ids = [r[0] for r in db.execute("SELECT DISTINCT alert_id FROM audit "
                                        "WHERE alert_id IS NOT NULL")]
        db.executemany("UPDATE audit SET alert_seq = (SELECT seq FROM alerts WHERE id = ?) "
                       "WHERE alert_id = ?", [(_base_id(i), i) for i in ids])
        db.execute("DROP INDEX IF EXISTS audit_alert")


_REPEAT_SUFFIX = re.compile(r"-r\d+$")


def _base_id(delivery_id: str) -> str:
    """``a-…-r2`` (a repeat's id) -> ``a-…``: the alert whose seq an audit row carries
    (``alerts.ack.base_alert_id``; repeated here, the store imports nothing of alerts/)."""
    if delivery_id.startswith("a-"):
        return _REPEAT_SUFFIX.sub("", delivery_id)
    return delivery_id


MENTION_COLUMNS = ("key", "brand", "post_id", "created_at", "seen_at", "author", "followers",
                   "text", "sentiment", "negative", "severity", "reasons", "needs_reply",
                   "replied_at", "replied_by", "acked_by", "private_resolve_at", "incident_id")
"""The ``mentions`` projection's columns, in the order ``save_mentions`` takes them."""
SHOWN_MENTION_COLUMNS = tuple(c for c in MENTION_COLUMNS if c != "seen_at")
"""The columns ``mention_rows`` returns (the dashboard's), in order."""

_SAVE_MENTION = (
    f"INSERT INTO mentions ({', '.join(MENTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in MENTION_COLUMNS)}) ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in MENTION_COLUMNS if c != "key"))
_INSERT_EVENT = ("INSERT INTO events (key, kind, seen_at, body, decision) "
                 "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_INSERT_ALERT = ("INSERT INTO alerts (id, seq, at, type, brand, level, severity, post_id, "
                 "incident_id, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT)) "
                 "ON CONFLICT DO NOTHING")
"""The body is bound as the line's UTF-8 bytes (``Alert.to_json_bytes``) and stored as
the same TEXT as the line itself (a BLOB cast to TEXT keeps its bytes: the database is
UTF-8): no ``str`` made per alert only to be encoded again for SQLite."""
_INSERT_DELIVERY = ("INSERT INTO deliveries (alert_id, channel, alert_seq) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING")
_PROBE_CHUNK = 500
SNAPSHOT_SUFFIX = ".snap"
SNAPSHOT_PART = ".part"
"""A snapshot file being written (``Store.write_snapshot_forked``): never read."""


def _snapshot_row(db: sqlite3.Connection, body: bytes, at: float, taken_at: float,
                  keep_for: float, seq: int, fixed: bool = True) -> None:
    """``Store.save_snapshot``'s rows, on ``db`` (the store's or, on PostgreSQL, a forked
    child's own connection: ``PgStore.write_snapshot_forked``)."""
    if fixed and db.execute("SELECT 1 FROM snapshots WHERE seq > ?", (seq,)).fetchone():
        return  # a newer one is stored (taken while this one was being written)
    db.execute("DELETE FROM snapshots WHERE seq >= ?", (seq,))
    db.execute("INSERT INTO snapshots (seq, at, taken_at, body) VALUES (?, ?, ?, ?)",
               (seq, at, taken_at, body))
    db.execute("DELETE FROM snapshots WHERE seq < ? AND taken_at < ?", (seq, taken_at - keep_for))


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
"""Keys per ``SELECT ... IN (...)`` (SQLite's old limit on bound variables is 999)."""


class Mark(NamedTuple):
    """Where the buffers stood when an event's handling began (see ``Store.mark``). A
    tuple: one is made per event, and a frozen dataclass took 2.5x as long to build."""

    events: int
    alerts: int
    deliveries: int
    alert_seq: int
    savepoint: bool


_new_mark = tuple.__new__


def _kind(event: StoredEvent) -> str:
    return "post" if isinstance(event, Post) else "action" if isinstance(event, Action) \
        else "counts"


def decode_event(kind: str, body: bytes) -> StoredEvent:
    """An ``events`` row's event back from its kind and body."""
    if kind == "post":
        return _post_decoder.decode(body)
    if kind == "action":
        return _action_decoder.decode(body)
    return _counts_decoder.decode(body)


def encode_event(event: StoredEvent) -> bytes:
    """An event as the ``events`` table keeps it (JSON of its fields)."""
    return _encoder.encode(event)


def encode_events(events: Sequence[StoredEvent]) -> list[bytes]:
    """``encode_event`` of each of ``events``, in one call: their JSON lines, split (a
    JSON text holds no raw line break). ~25 % cheaper than an encoder call an event,
    each with a buffer of its own (the replay's feed reader encodes ~100,000 a day)."""
    return _encoder.encode_lines(events).split(b"\n")[:-1]


def post_key(post_id: str) -> str:
    """``event_key`` of the post with id ``post_id``."""
    return "p:" + post_id


def event_key(event: StoredEvent | PlainPost) -> str:
    """What makes an event unique: a post by id, an action by id."""
    if isinstance(event, Post | PlainPost):
        return post_key(event.id)
    if isinstance(event, Action):
        return f"a:{event.id}"
    return f"c:{event.post_id}:{event.reposts_count}"


SEEN_IDS_MAX = 2_000_000
"""Alert ids an exclusive store remembers (~150 MB) before it looks each one up again."""
RECENT_ALERTS = 4096
"""How many of its latest alerts a store keeps in memory for the outbox, which claims
them within a batch or two (~1,250 alerts a second at 5,000 posts/s): decoding each
stored body again cost ~5 us an alert and a channel, and the alert's cached JSON line
was lost with it."""


class Store:
    """SQLite state. Not thread-safe; one per event loop."""

    _D_KEY = "alert_seq = (SELECT seq FROM alerts WHERE id = ?)"
    """The rows of ``deliveries`` (or ``audit``) of the alert whose id is bound: by its seq
    (see the schema's comment); ``PgStore``: by the id."""
    _D_JOIN = "a.seq = d.alert_seq"
    """``alerts a`` joined to ``deliveries d``."""
    _BY_SEQ = True
    """Whether rows are found by the alert's seq when it is known (not on PostgreSQL)."""

    _seen_ids: set[str] | None = None  # see __init__; PgStore never tracks them
    _seen_keys: set[str] | None = None
    _exclusive = False

    def __init__(self, path: str | Path, exclusive: bool = False, durable: bool = True,
                 write_behind: bool = False) -> None:
        """Open (and create or migrate) the database at ``path``.

        ``exclusive``: nothing but this object writes alerts and events into the database
        (the replay's own ``state.db``); then ``add_alerts`` and ``add_event`` need no
        lookup for an id or key they have never seen, as long as the database held none
        when opened.
        ``durable`` False: no fsync at all (``synchronous=OFF``) and no write-ahead log,
        for a database rebuilt from nothing on every run (the replay's), which a crash or a
        power loss only makes run again. Readers must wait for its writer's commits.
        ``write_behind`` (with ``durable`` False): the connection runs in a forked writer
        process (``monitor.store.behind``), which inserts a batch's rows while this one
        goes on; in-process where no process can be forked.
        """
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        pragmas = _pragmas(durable)
        for pragma in pragmas:
            self.db.execute(pragma)
        if write_behind and not durable and self.path != ":memory:":
            self._write_behind(pragmas)
        _migrate_deliveries(self.db)
        _migrate_events(self.db)
        _migrate_audit(self.db)
        self.db.executescript(SCHEMA)
        _copy_deliveries(self.db)
        self._hold_bulk_indexes()
        self._in_tx = False
        self._exclusive = exclusive
        self._log_bytes = 0
        """The log's length at the last ``checkpoint`` pass (``wal_log_bytes``)."""
        self._alert_seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]
        self._init_buffers()
        empty = self.db.execute("SELECT 1 FROM alerts LIMIT 1").fetchone() is None
        self._seen_ids: set[str] | None = set() if exclusive and empty else None
        no_events = self.db.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None
        self._seen_keys: set[str] | None = set() if exclusive and no_events else None
        """Likewise every event key ever buffered, when tracked: ``add_event`` and
        ``expect`` need no query for a key outside it (~0.3 s of a 100,000-post replay)."""
        """Every alert id ever buffered, when tracked: a superset of the stored ids (a
        rollback may drop some; it is never trimmed), so an id outside it is not stored
        and needs no query. None: not tracked (shared database, or grown too large)."""

    def _write_behind(self, pragmas: Sequence[str]) -> None:
        """Hand the connection to a writer process, with the same ``pragmas`` (closed
        here first: a connection must not cross a fork; the writer's connection makes the
        file, so ``page_size`` is its to set); keep it here if none can be started."""
        from monitor.store.behind import WriteBehind

        self.db.close()
        try:
            self.db = WriteBehind(self.path, pragmas)  # type: ignore[assignment]
        except OSError:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in pragmas:
                self.db.execute(pragma)

    def _writer(self) -> WriteBehind | None:
        """The forked writer running this store's connection (``write_behind``), if any."""
        from monitor.store.behind import WriteBehind

        return self.db if isinstance(self.db, WriteBehind) else None

    def _hold_bulk_indexes(self) -> None:
        """A write-behind store (the replay's, made anew on every run) builds
        ``BULK_INDEXES`` after its rows are in, not row by row."""
        if (writer := self._writer()) is not None:
            writer.hold_indexes(BULK_INDEXES)

    def end_bulk_load(self) -> None:
        """The rows loaded in bulk are all in: a write-behind store's writer builds the
        indexes it held back now, while the caller goes on (else at the close, which
        would wait for them)."""
        if (writer := self._writer()) is not None:
            writer.restore_indexes()

    def abandon(self) -> None:
        """After a failure: end a write-behind writer without waiting for its writes (a
        store with its connection in this process is left as it is)."""
        if (writer := self._writer()) is not None:
            writer.abandon()

    def _init_buffers(self) -> None:
        self._encoded: dict[str, bytes] = {}
        self._events: list[tuple[str, str, float, bytes, bytes | None]] = []
        self._event_keys: set[str] = set()
        """Keys of the buffered events (a repeat inside one batch is a duplicate too)."""
        self._absent: set[str] = set()
        """Keys ``expect`` found not stored, in this transaction (saves a query each)."""
        self._alerts: list[tuple[object, ...]] = []
        self._alert_ids: set[str] = set()
        self._deliveries: list[tuple[str, str, int]] = []
        self._recent: OrderedDict[str, tuple[int, Alert]] = OrderedDict()
        """The latest alerts ``add_alerts`` recorded with deliveries (the others are
        never handed out), by id: (seq, alert), oldest first,
        ``RECENT_ALERTS`` at most (``pending_deliveries`` hands them out as they are);
        a rollback drops them all, an undone step its own. Ordered, so the oldest goes
        in constant time: a plain dict finds its first entry by scanning past the ones
        deleted before it (since its last resize), which made evicting one per alert
        ~0.5 s of the mention-heavy day's 131,722 alerts."""
        self.on_flush: list[Callable[[], None]] = []
        """Called when the buffers are written, inside that transaction: the pipeline
        writes its projections (mentions, incidents) here."""

    def close(self) -> None:
        if self._in_tx:
            self.commit()
        self.db.close()

    # ---------------------------------------------------------------- transactions
    @property
    def in_transaction(self) -> bool:
        return self._in_tx

    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            if not self._exclusive:
                # Another process may have stored alerts since (``crisismon digest --now``
                # on the daemon's store): number on from the newest, which the write lock
                # keeps the newest until the commit. A seq is its alert's key in
                # ``deliveries``: two alerts with one seq would lose a delivery.
                self._alert_seq = max(self._alert_seq, self.db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0])

    def commit(self) -> None:
        if self._in_tx:
            try:
                self._write()
            except BaseException:
                self.rollback()
                raise
            self.db.execute("COMMIT")
            self._in_tx = False
            self._absent.clear()

    def rollback(self) -> None:
        self._events, self._alerts, self._deliveries = [], [], []
        self._event_keys.clear()
        self._alert_ids.clear()
        self._absent.clear()
        self._recent.clear()
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False
        self._alert_seq = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]

    def flush(self) -> None:
        """Write what is buffered: into the open transaction, or in one of its own."""
        if self._in_tx:
            self._write()
            return
        self.begin()
        self.commit()

    def _write(self) -> None:
        if self._events:
            self.db.executemany(_INSERT_EVENT, self._events)
        if self._alerts:
            self.db.executemany(_INSERT_ALERT, self._alerts)
        if self._deliveries:
            self.db.executemany(_INSERT_DELIVERY, self._deliveries)
        self._events, self._alerts, self._deliveries = [], [], []
        self._event_keys.clear()
        self._alert_ids.clear()
        for hook in self.on_flush:
            hook()

    def mark(self, savepoint: bool = False) -> Mark:
        """Start one event's step: ``undo`` drops exactly what it adds after this.

        Buffered rows need no SQL for that. ``savepoint`` also opens a real SAVEPOINT,
        for steps that write through ``db`` directly (an action's audit row)."""
        if savepoint:
            self.db.execute("SAVEPOINT step")
        # ``tuple.__new__`` straight: ``Mark(...)`` runs a Python ``__new__``, per event.
        return _new_mark(Mark, (len(self._events), len(self._alerts), len(self._deliveries),
                                self._alert_seq, savepoint))

    def release(self, mark: Mark) -> None:
        """The step succeeded: keep what it added."""
        if mark.savepoint:
            self.db.execute("RELEASE step")

    def undo(self, mark: Mark) -> None:
        """The step failed: forget every row it added (none of it reaches the database)."""
        if mark.savepoint:
            self.db.execute("ROLLBACK TO step")
            self.db.execute("RELEASE step")
        for row in self._events[mark.events:]:
            self._event_keys.discard(row[0])
        for arow in self._alerts[mark.alerts:]:
            self._alert_ids.discard(arow[0])  # type: ignore[arg-type]
            self._recent.pop(arow[0], None)  # type: ignore[call-overload]
        del self._events[mark.events:]
        del self._alerts[mark.alerts:]
        del self._deliveries[mark.deliveries:]
        self._alert_seq = mark.alert_seq

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested all-or-nothing step inside the current transaction."""
        mark = self.mark(savepoint=True)
        try:
            yield
        except BaseException:
            self.undo(mark)
            raise
        self.release(mark)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: commit on success, roll back on any error."""
        if self._in_tx:
            yield
            return
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # ---------------------------------------------------------------- events
    def add_event(self, event: StoredEvent, seen_at: float) -> bool:
        """Store an event; False if it was stored before (the dedupe across all sources).

        Inside a transaction the row is buffered until the commit (see the module doc)."""
        if type(event) is Post:  # nearly every event: key and kind without the tests below
            return self._add_event(post_key(event.id), "post", seen_at, event)
        return self._add_event(event_key(event), _kind(event), seen_at, event)

    def add_plain(self, post: PlainPost, seen_at: float) -> bool:
        """``add_event`` of a plain post whose body was given (``encoded``)."""
        return self._add_event(post_key(post.id), "post", seen_at, None)

    def pending_post(self, post_id: str) -> Post:
        """The whole post ``post_id`` from its body given (``encoded``) and not yet stored."""
        body = self._encoded.get(post_key(post_id)) if self._encoded else None
        if body is None:
            raise LookupError(f"post {post_id}: no body given for it")
        return _post_decoder.decode(body)

    def _add_event(self, key: str, kind: str, seen_at: float,
                   event: StoredEvent | None) -> bool:
        """``add_event``; ``event`` None: a plain post, whose body must have been given."""
        if key in self._event_keys:
            return False
        seen = self._seen_keys
        if seen is not None and key not in seen:
            pass  # never buffered, so not stored: no query
        elif key in self._absent:
            self._absent.discard(key)
        elif self._stored(key):
            return False
        body = self._encoded.pop(key, None) if self._encoded else None
        if body is None:
            if event is None:
                raise LookupError(f"{key}: a plain post without its body")
            body = encode_event(event)
        if seen is not None:
            seen.add(key)
            if len(seen) > SEEN_IDS_MAX:  # bounded memory: back to the queries
                self._seen_keys = None
        # A post is decided when handled (``decide``); until then: about nothing.
        row = (key, kind, seen_at, body, b"" if kind == "post" else None)
        if not self._in_tx:  # no batch to join: store it now
            self.db.execute(_INSERT_EVENT, row)
            return True
        self._event_keys.add(key)
        self._events.append(row)
        return True

    def decide(self, post_id: str, decision: bytes) -> None:
        """Store what was decided about a post just added (``monitor.decision``)."""
        key = post_key(post_id)
        events = self._events
        if events and events[-1][0] == key:  # buffered a moment ago: the usual case
            events[-1] = (*events[-1][:4], decision)
            return
        self.db.execute("UPDATE events SET decision = ? WHERE key = ?", (decision, key))

    def encoded(self, bodies: dict[str, bytes]) -> None:
        """Events about to be added, encoded already (``encode_event``, by the replay's
        feed reader, in its own process), by event key: ``add_event`` takes its body from
        here. Replaces the previous lot; what is not taken is never used."""
        self._encoded = bodies

    def _stored(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM events WHERE key = ?", (key,)).fetchone() \
            is not None

    def expect(self, events: Iterable[StoredEvent | PlainPost]) -> None:
        """Look up which of ``events`` are not stored yet, in one query per 500, so that
        ``add_event`` needs no query of its own for them. Only inside a transaction (the
        write lock keeps the answer true until it ends); a hint: without it, the same."""
        if not self._in_tx or self._seen_keys is not None:
            return  # (an exclusive store knows which keys it never had)
        keys = list({event_key(e) for e in events} - self._event_keys)
        self._absent = set(keys)
        for i in range(0, len(keys), _PROBE_CHUNK):
            chunk = keys[i:i + _PROBE_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for (key,) in self.db.execute(f"SELECT key FROM events WHERE key IN ({marks})",
                                          chunk):
                self._absent.discard(key)

    def has_post(self, post_id: str) -> bool:
        key = post_key(post_id)
        return key in self._event_keys or self._stored(key)

    def events(self) -> Iterator[tuple[float, StoredEvent]]:
        """Every stored event in the order it was first seen, with when it was seen."""
        for _seq, seen_at, event, _decision in self.events_since(0):
            yield seen_at, event

    def events_since(self, seq: int, chunk: int = 5000
                     ) -> Iterator[tuple[int, float, StoredEvent, bytes | None]]:
        """Stored events after ``seq``, oldest first: (seq, seen_at, event, decision).

        Read ``chunk`` rows at a time (a query each), so memory does not grow with the
        rows and the caller may write between chunks."""
        self._write_buffered()
        while True:
            rows = self.db.execute(
                "SELECT seq, kind, seen_at, body, decision FROM events WHERE seq > ? "
                "ORDER BY seq LIMIT ?", (seq, chunk)).fetchall()
            for n, kind, seen_at, body, decision in rows:
                yield n, seen_at, decode_event(kind, bytes(body)), \
                    None if decision is None else bytes(decision)
            if len(rows) < chunk:
                return
            seq = rows[-1][0]

    # ---------------------------------------------------------------- snapshots
    def last_seq(self) -> int:
        """``seq`` of the newest stored event (0: none)."""
        self._write_buffered()
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def save_snapshot(self, body: bytes, at: float, taken_at: float,
                      keep_for: float = 0.0, seq: int | None = None) -> int:
        """Store an engine snapshot covering every event stored so far; returns its seq.

        Call inside the transaction in which the engine reached that state, so the
        snapshot and the events it covers commit together (or neither does: a kill -9 at
        any point leaves the previous snapshot and the events after it). ``at``: the
        engine's time; ``taken_at``: wall time. Older snapshots are dropped, except those
        taken in the last ``keep_for`` seconds (a takeover may need one, see
        ``monitor.cluster``). ``seq``: the snapshot was taken earlier, when the newest
        stored event was ``seq`` (a forked snapshot, see ``monitor.daemon``); it is not
        stored if a newer one is. An empty ``body``: the body is in ``snapshot_file(seq)``
        (``write_snapshot_forked``)."""
        fixed = seq is not None
        if seq is None:
            seq = self.last_seq()
        _snapshot_row(self.db, body, at, taken_at, keep_for, seq, fixed)
        return seq

    # A periodic snapshot is written by a forked child (``monitor.daemon``), so that the
    # event loop neither pickles the engine nor copies tens of MB into the database: on
    # SQLite the child writes a file next to the store (``snapshot_file``: written under
    # another name, fsynced, renamed, the directory fsynced), and the parent then records
    # it with a row whose body is empty (``record_snapshot``); the files no row names any
    # more are deleted once that commit is on disk (``remove_snapshot_files``, in a
    # thread: the fsync stays off the event loop). A kill -9 at any point leaves the previous
    # snapshot usable: before the commit, the new file is unnamed (a left-over, deleted
    # later); after it, the new one is complete. The child never touches ``self.db``:
    # an SQLite connection must not be used, nor its locks relied on, across a fork.
    def snapshot_dir(self) -> Path | None:
        """The folder of snapshot files (None: an in-memory store, which has none)."""
        return None if self.path == ":memory:" else Path(self.path + ".snapshots")

    def snapshot_file(self, seq: int) -> Path:
        folder = self.snapshot_dir()
        if folder is None:
            raise ValueError("an in-memory store keeps no snapshot files")
        return folder / f"{seq:015d}{SNAPSHOT_SUFFIX}"

    def forks_snapshots(self) -> bool:
        """Whether ``write_snapshot_forked`` can store a snapshot from a forked child."""
        return self.snapshot_dir() is not None

    def write_snapshot_forked(self, body: bytes, seq: int, at: float, taken_at: float,
                              keep_for: float) -> None:
        """In a forked child: write ``body`` (the engine as of events.seq ``seq``) where
        ``record_snapshot`` in the parent then finds it. Durable when it returns."""
        final = self.snapshot_file(seq)
        final.parent.mkdir(exist_ok=True)
        # The writer's own name: a child orphaned by a kill -9 may still be writing the
        # same ``seq`` when the next daemon's first child does (the last rename wins;
        # either file is the engine as of that ``seq``).
        part = final.with_name(f"{final.stem}.{os.getpid()}{SNAPSHOT_PART}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, final)
        _fsync_dir(final.parent)

    def record_snapshot(self, seq: int, at: float, taken_at: float, keep_for: float) -> None:
        """In the parent, once the child's ``write_snapshot_forked`` succeeded: record it
        with a row of its own (its own transaction; call outside one). The files it
        replaces are deleted after (``stale_snapshot_files``, ``remove_snapshot_files``)."""
        if self._in_tx:
            raise RuntimeError("record_snapshot runs in a transaction of its own")
        with self.transaction():
            self.save_snapshot(b"", at, taken_at, keep_for, seq)

    def stale_snapshot_files(self) -> list[Path]:
        """The snapshot files no row names now: older ones, replaced; a child's that was
        never recorded; one half-written by a child killed while writing. Only the daemon
        asks, when no child of its own is writing."""
        folder = self.snapshot_dir()
        if folder is None or not folder.is_dir():
            return []
        named = {int(r[0]) for r in self.db.execute(
            "SELECT seq FROM snapshots WHERE length(body) = 0")}
        return [path for path in folder.iterdir() if path.suffix == SNAPSHOT_PART or (
            path.suffix == SNAPSHOT_SUFFIX and path.stem.isdigit()
            and int(path.stem) not in named)]

    def remove_snapshot_files(self, paths: Sequence[Path]) -> int:
        """Delete ``paths`` (``stale_snapshot_files``) once the commits that stopped
        naming them are on disk: the write-ahead log is synced first (in WAL mode with
        ``synchronous=NORMAL`` a commit survives kill -9 but not a power loss, which must
        not bring back a row whose file is gone). Touches no connection: any thread may
        call it (the daemon's does, off the event loop). Returns how many."""
        if not paths:
            return 0
        with contextlib.suppress(FileNotFoundError):  # (none: not WAL, or checkpointed
            fd = os.open(self.path + "-wal", os.O_RDONLY)  # and synced, then truncated)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return len(paths)

    def drop_snapshot_files(self) -> int:
        """``remove_snapshot_files(stale_snapshot_files())``, here and now (at start)."""
        return self.remove_snapshot_files(self.stale_snapshot_files())

    def _snapshot_body(self, seq: int, body: bytes) -> bytes | None:
        """A row's body: its own, or its file's (None: the file is gone)."""
        if body:
            return body
        try:
            return self.snapshot_file(seq).read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("engine snapshot file missing; trying an older snapshot", seq=seq,
                        error=f"{type(exc).__name__}: {exc}")
            return None

    def load_snapshot(self, taken_before: float | None = None
                      ) -> tuple[int, float, bytes] | None:
        """The newest snapshot (taken at or before ``taken_before``, wall time, if
        given): (seq, engine time, body); None if there is none. One whose file is gone
        (a store copied without its ``snapshot_dir``) is passed over for the next."""
        if taken_before is None:
            rows = self.db.execute("SELECT seq, at FROM snapshots ORDER BY seq DESC").fetchall()
        else:  # or, if none is that old, the oldest kept (events before it may be gone)
            rows = self.db.execute("SELECT seq, at FROM snapshots WHERE taken_at <= ? "
                                   "ORDER BY seq DESC", (taken_before,)).fetchall() \
                + self.db.execute("SELECT seq, at FROM snapshots WHERE taken_at > ? "
                                  "ORDER BY seq", (taken_before,)).fetchall()
        for seq, at in rows:
            row = self.db.execute("SELECT body FROM snapshots WHERE seq = ?", (seq,)).fetchone()
            body = None if row is None else self._snapshot_body(int(seq), bytes(row[0]))
            if body is not None:
                return int(seq), float(at), body
        return None

    # ---------------------------------------------------------------- retention
    PRUNED_META = "pruned_before"

    def pruned_before(self) -> float:
        """The retention's last cutoff: posts older than this are no longer remembered
        (so one seen again is not handled again, see ``Pipeline.handle``)."""
        value = self.get_meta(self.PRUNED_META)
        return float(value) if value is not None else float("-inf")

    def prune_events(self, cutoff: float, limit: int) -> tuple[int, int]:
        """Delete up to ``limit`` of the oldest events seen before ``cutoff``, never one
        an engine snapshot still needs (see ``snapshot_seq``). Returns (rows looked at,
        rows deleted): the pass is over when fewer than ``limit`` were looked at."""
        self._write_buffered()
        keep_from = self.snapshot_seq()
        rows = self.db.execute("SELECT seq, seen_at FROM events WHERE seq <= ? ORDER BY seq "
                               "LIMIT ?", (keep_from, limit)).fetchall()
        last, n = None, 0
        for seq, seen_at in rows:  # the oldest first: stop at the first one to keep
            if seen_at >= cutoff:
                return 0, self._delete_events(last, n, cutoff)
            last, n = seq, n + 1
        return len(rows), self._delete_events(last, n, cutoff)

    def _delete_events(self, last: int | None, n: int, cutoff: float) -> int:
        if last is not None:
            self.db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        self.set_meta(self.PRUNED_META, repr(cutoff))
        return n

    def prune_mentions(self, cutoff: float, limit: int,
                       open_incidents: Sequence[str]) -> tuple[int, int]:
        """Delete up to ``limit`` mention rows first posted before ``cutoff``: settled (the
        whole reply ladder lies far behind them), except those of an open incident.
        Returns (rows looked at, rows deleted)."""
        self._write_buffered()
        keep = list(open_incidents) or [""]
        marks = ", ".join("?" for _ in keep)
        keys = [r[0] for r in self.db.execute(
            f"SELECT key FROM mentions WHERE created_at < ? AND (incident_id IS NULL OR "
            f"incident_id NOT IN ({marks})) ORDER BY created_at LIMIT ?",
            (cutoff, *keep, limit))]
        self._delete_in("mentions", "key", keys)
        return len(keys), len(keys)

    def prune_alerts(self, cutoff: float, limit: int, after: tuple[float, str]
                     ) -> tuple[int, int, tuple[float, str]]:
        """Look at up to ``limit`` alerts raised before ``cutoff``, oldest first, from
        just after ``after`` (``at``, id), and delete those whose every delivery is over
        (delivered, summarised, silenced or failed; no repeat still running) with their
        delivery and repeat rows. Returns (looked at, deleted, where to go on from): an
        alert still pending is stepped over, not looked at again in this pass."""
        self._write_buffered()
        rows = self.db.execute("SELECT id, at FROM alerts WHERE (at, id) > (?, ?) AND at < ? "
                               "ORDER BY at, id LIMIT ?", (*after, cutoff, limit)).fetchall()
        if not rows:
            return 0, 0, after
        ids = [r[0] for r in rows]
        busy: set[str] = set()
        for i in range(0, len(ids), _PROBE_CHUNK):
            chunk = ids[i:i + _PROBE_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            busy.update(r[0] for r in self.db.execute(
                f"SELECT a.id FROM alerts a JOIN deliveries d ON {self._D_JOIN} WHERE a.id IN "
                f"({marks}) AND d.state IN ('pending', 'held') UNION SELECT alert_id FROM "
                f"repeats WHERE alert_id IN ({marks}) AND done = 0", (*chunk, *chunk)))
        done = [i for i in ids if i not in busy]
        self._delete_deliveries(done)
        self._delete_in("repeats", "alert_id", done)
        self._delete_in("alerts", "id", done)
        return len(rows), len(done), (rows[-1][1], rows[-1][0])

    def _delete_deliveries(self, alert_ids: Sequence[str]) -> None:
        """Delete the delivery rows of ``alert_ids`` (before the alerts themselves)."""
        if not self._BY_SEQ:
            self._delete_in("deliveries", "alert_id", alert_ids)
            return
        for i in range(0, len(alert_ids), _PROBE_CHUNK):
            chunk = alert_ids[i:i + _PROBE_CHUNK]
            self.db.execute("DELETE FROM deliveries WHERE alert_seq IN (SELECT seq FROM alerts "
                            f"WHERE id IN ({', '.join('?' for _ in chunk)}))", chunk)

    def _delete_in(self, table: str, column: str, values: Sequence[str]) -> None:
        for i in range(0, len(values), _PROBE_CHUNK):
            chunk = values[i:i + _PROBE_CHUNK]
            self.db.execute(f"DELETE FROM {table} WHERE {column} IN "
                            f"({', '.join('?' for _ in chunk)})", chunk)

    def snapshot_seq(self) -> int:
        """``seq`` of the oldest snapshot kept (0: none): events after it are needed."""
        row = self.db.execute("SELECT MIN(seq) FROM snapshots").fetchone()
        return int(row[0] or 0)

    def _write_buffered(self) -> None:
        """Before a query that must see the buffered rows."""
        if self._events or self._alerts or self._deliveries:
            self.flush()

    def count_events(self) -> int:
        self._write_buffered()
        return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def last_seen(self) -> float | None:
        self._write_buffered()
        row = self.db.execute("SELECT MAX(seen_at) FROM events").fetchone()
        return row[0]

    # ---------------------------------------------------------------- cursors
    def get_cursor(self, source: str) -> str | None:
        row = self.db.execute("SELECT value FROM cursors WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, source: str, value: str) -> None:
        self.db.execute("INSERT INTO cursors (source, value) VALUES (?, ?) "
                        "ON CONFLICT(source) DO UPDATE SET value = excluded.value",
                        (source, value))

    # ---------------------------------------------------------------- alerts + outbox
    def add_alerts(self, alerts: Iterable[Alert], channels: Sequence[str] = ()) -> list[Alert]:
        """Record alerts (and a pending delivery per channel); return only the new ones."""
        if not self._in_tx:  # numbered under the write lock (see ``begin``)
            with self.transaction():
                return self.add_alerts(alerts, channels)
        new: list[Alert] = []
        seen = self._seen_ids
        buffered = self._alert_ids  # (names held locally: this runs once per alert)
        rows = self._alerts
        body = self._alert_body
        recent = self._recent
        alerts = list(alerts)
        # The ids that may be stored already (all, unless every id ever buffered is
        # tracked) looked up together: one statement a call, not one (~7 us) an alert.
        # (Every buffered id is in ``seen``: a new one fails the first test, and that alone.)
        ask = [a.id for a in alerts if (seen is None or a.id in seen) and a.id not in buffered]
        stored = self._stored_ids(ask) if ask else ()
        for alert in alerts:
            aid = alert.id
            if aid in buffered or aid in stored:
                continue
            if seen is not None:
                seen.add(aid)
                if len(seen) > SEEN_IDS_MAX:  # bounded memory: back to a lookup each
                    self._seen_ids = seen = None
            self._alert_seq = seq = self._alert_seq + 1
            buffered.add(aid)
            rows.append((aid, seq, alert.at, str(alert.type), alert.brand, alert.level,
                         alert.severity, alert.post_id, alert.incident_id, body(alert)))
            new.append(alert)
            if channels:  # (only an alert with deliveries is handed out to the outbox)
                self._deliveries.extend((aid, channel, seq) for channel in channels)
                recent[aid] = (seq, alert)
                if len(recent) > RECENT_ALERTS:  # the oldest (lowest seq) goes
                    recent.popitem(last=False)
        return new

    def _stored_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` the alerts table holds."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):  # well under any backend's bound-variable limit
            chunk = ids[i:i + 500]
            found.update(row[0] for row in self.db.execute(
                f"SELECT id FROM alerts WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    @staticmethod
    def _alert_body(alert: Alert) -> str | bytes:
        """The ``body`` value bound for ``alert`` (see ``_INSERT_ALERT``)."""
        return alert.to_json_bytes()

    def alert_ids(self) -> set[str]:
        self._write_buffered()
        return {row[0] for row in self.db.execute("SELECT id FROM alerts")}

    def alert(self, alert_id: str) -> Alert | None:
        """The stored alert ``alert_id``, or None."""
        self._write_buffered()
        row = self.db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else Alert.from_record(msgspec.json.decode(row[0]))

    def alerts(self) -> list[Alert]:
        """Every alert, in the order raised."""
        self._write_buffered()
        rows = self.db.execute("SELECT body FROM alerts ORDER BY seq")
        return [Alert.from_record(msgspec.json.decode(r[0])) for r in rows]

    def pending_deliveries(self, channel: str, now: float, limit: int = 100,
                           skip: Collection[tuple[str, int]] = (),
                           skip_upto: int = 0) -> list[PendingDelivery]:
        """Deliveries of ``channel`` due for a try at ``now``, oldest alert first.

        ``skip``: ``(alert id, rep)`` of deliveries being sent right now (the outbox's
        windows in flight, still pending here until their outcome is recorded): passed
        over, and not counted in ``limit``. ``skip_upto``: the highest alert seq among
        them: the rows up to it are read without their alert (a row's body, carried
        through the sort, cost more than the row), which is fetched only for one that
        is not skipped."""
        self._write_buffered()
        recent = self._recent
        # Bodies from the oldest alert still held in ``recent`` on are not read (a held
        # one is used as it is; one missing there is fetched by its id, as a skipped one).
        held_from = next(iter(recent.values()))[0] if recent else self._alert_seq + 1
        rows = self.db.execute(
            "SELECT a.id, CASE WHEN a.seq > ? AND a.seq < ? THEN a.body END, d.attempts, "
            f"d.rep, a.seq FROM deliveries d JOIN alerts a ON {self._D_JOIN} WHERE "
            "d.channel = ? AND d.state = 'pending' AND d.next_try <= ? "
            "ORDER BY a.seq, d.rep LIMIT ?",
            (skip_upto if skip else -1, held_from, channel, now, limit + len(skip)))
        return _due(rows, channel, limit, skip, Alert.from_json, self._body, recent)

    def _body(self, alert_id: str) -> Any:
        """The stored body of the alert ``alert_id``."""
        return self.db.execute("SELECT body FROM alerts WHERE id = ?",
                               (alert_id,)).fetchone()[0]

    def next_retry(self, channel: str) -> float | None:
        """When ``channel`` next has work: a retry, a deferred page or a held group's flush."""
        self._write_buffered()
        row = self.db.execute("SELECT MIN(next_try) FROM deliveries WHERE channel = ? AND "
                              "state IN ('pending', 'held')", (channel,)).fetchone()
        return row[0]

    def mark_delivered(self, alert_id: str, channel: str, now: float, rep: int = 0) -> None:
        self._write_buffered()
        self.db.execute("UPDATE deliveries SET state = 'delivered', delivered_at = ?, "
                        f"attempts = attempts + 1, last_error = NULL WHERE {self._D_KEY} "
                        "AND channel = ? AND rep = ?", (now, alert_id, channel, rep))

    def mark_delivered_many(self, channel: str, deliveries: Sequence[tuple[str, int, int]],
                            now: float) -> None:
        """``mark_delivered`` for many ``(alert id, rep, alert seq)`` of one channel, one
        statement (a seq of 0: not known, found by the id)."""
        self._write_buffered()
        sql = ("UPDATE deliveries SET state = 'delivered', delivered_at = ?, "
               "attempts = attempts + 1, last_error = NULL WHERE {} AND channel = ? AND rep = ?")
        by_seq = [(now, seq, channel, rep) for _aid, rep, seq in deliveries
                  if seq and self._BY_SEQ]
        by_id = [(now, aid, channel, rep) for aid, rep, seq in deliveries
                 if not (seq and self._BY_SEQ)]
        if by_seq:
            self.db.executemany(sql.format("alert_seq = ?"), by_seq)
        if by_id:
            self.db.executemany(sql.format(self._D_KEY), by_id)

    def mark_failed(self, alert_id: str, channel: str, error: str, next_try: float | None,
                    rep: int = 0) -> None:
        """A failed try: retry at ``next_try``, or give up (``None``: the error is final)."""
        self._write_buffered()
        state = "pending" if next_try is not None else "failed"
        self.db.execute("UPDATE deliveries SET state = ?, attempts = attempts + 1, "
                        "last_error = ?, next_try = COALESCE(?, next_try) "
                        f"WHERE {self._D_KEY} AND channel = ? AND rep = ?",
                        (state, error[:500], next_try, alert_id, channel, rep))

    def mark_judged(self, alert_id: str, channel: str, rep: int, state: str,
                    next_try: float | None, grp: str = "", note: str = "") -> None:
        """A noise stage's verdict: ``silenced`` (final), ``pending`` again at ``next_try``
        (deferred), or ``held`` in group ``grp`` until ``next_try``."""
        self._write_buffered()
        self.db.execute("UPDATE deliveries SET state = ?, next_try = COALESCE(?, next_try), "
                        f"grp = ?, last_error = ? WHERE {self._D_KEY} AND channel = ? AND rep = ?",
                        (state, next_try, grp, note or None, alert_id, channel, rep))

    def due_groups(self, channel: str, now: float) -> list[str]:
        """Held groups of ``channel`` whose first page's flush time has come."""
        self._write_buffered()
        rows = self.db.execute("SELECT grp FROM deliveries WHERE channel = ? AND state = 'held' "
                               "GROUP BY grp HAVING MIN(next_try) <= ?", (channel, now))
        return [r[0] for r in rows]

    def held(self, channel: str, grp: str) -> list[PendingDelivery]:
        """The pages held in ``grp`` on ``channel``, oldest first."""
        self._write_buffered()
        rows = self.db.execute(
            "SELECT a.body, d.attempts, d.rep, a.seq FROM deliveries d JOIN alerts a "
            f"ON {self._D_JOIN} WHERE d.channel = ? AND d.state = 'held' AND d.grp = ? "
            "ORDER BY a.seq, d.rep", (channel, grp))
        return [PendingDelivery(Alert.from_record(msgspec.json.decode(body)), channel,
                                attempts, rep, seq) for body, attempts, rep, seq in rows]

    def mark_summarised(self, items: Sequence[PendingDelivery], now: float) -> None:
        """Held pages that went out inside one summary message."""
        self._write_buffered()
        self.db.executemany(
            "UPDATE deliveries SET state = 'summarised', delivered_at = ?, last_error = NULL "
            f"WHERE {self._D_KEY} AND channel = ? AND rep = ?",
            [(now, i.alert.id, i.channel, i.rep) for i in items])

    def delivery_channels(self, alert_id: str) -> list[str]:
        """Channels the page itself (repeat 0) was routed to."""
        self._write_buffered()
        rows = self.db.execute(f"SELECT channel FROM deliveries WHERE {self._D_KEY} AND rep = 0",
                               (alert_id,))
        return [r[0] for r in rows]

    def add_repeat(self, alert_id: str, rep: int, channels: Sequence[str]) -> None:
        """Queue repeat number ``rep`` of an alert on ``channels``."""
        self._write_buffered()
        self.db.executemany("INSERT INTO deliveries (alert_id, channel, rep, alert_seq) "
                            "VALUES (?, ?, ?, (SELECT seq FROM alerts WHERE id = ?)) "
                            "ON CONFLICT DO NOTHING",
                            [(alert_id, c, rep, alert_id) for c in channels])

    def arm_repeat(self, alert_id: str, next_at: float) -> None:
        """Start the repeat schedule of a page that went out (once; later calls are no-ops)."""
        self._write_buffered()
        self.db.execute("INSERT INTO repeats (alert_id, n, next_at) VALUES (?, 0, ?) "
                        "ON CONFLICT DO NOTHING",
                        (alert_id, next_at))

    def due_repeats(self, now: float) -> list[tuple[Alert, int]]:
        """Armed repeat schedules due at ``now``: the alert and repeats sent so far."""
        self._write_buffered()
        rows = self.db.execute(
            "SELECT a.body, r.n FROM repeats r JOIN alerts a ON a.id = r.alert_id "
            "WHERE r.done = 0 AND r.next_at <= ? ORDER BY r.next_at", (now,))
        return [(Alert.from_record(msgspec.json.decode(body)), n) for body, n in rows]

    def next_repeat(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_at) FROM repeats WHERE done = 0").fetchone()
        return row[0]

    def set_repeat(self, alert_id: str, n: int, next_at: float, done: bool) -> None:
        self.db.execute("UPDATE repeats SET n = ?, next_at = ?, done = ? WHERE alert_id = ?",
                        (n, next_at, int(done), alert_id))

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        self._write_buffered()
        rows = self.db.execute("SELECT channel, state, COUNT(*) FROM deliveries GROUP BY 1, 2")
        return {(c, s): n for c, s, n in rows}

    def defer_group(self, channel: str, grp: str, next_try: float,
                    error: str | None = None) -> None:
        """Put the flush of held group ``grp`` on ``channel`` off to ``next_try`` (waiting
        for the rate limit; or after a failed try, with its ``error``)."""
        if error is None:
            self.db.execute("UPDATE deliveries SET next_try = ? WHERE channel = ? "
                            "AND state = 'held' AND grp = ?", (next_try, channel, grp))
        else:
            self.db.execute("UPDATE deliveries SET next_try = ?, last_error = ? WHERE "
                            "channel = ? AND state = 'held' AND grp = ?",
                            (next_try, error[:500], channel, grp))

    def oldest_pending(self, now: float) -> dict[str, float]:
        """Per channel: when the oldest page (not a repeat) still to go out was raised,
        among those due at ``now`` or tried at least once (``/metrics``)."""
        rows = self.db.execute(
            f"SELECT d.channel, MIN(a.at) FROM deliveries d JOIN alerts a ON {self._D_JOIN} "
            "WHERE d.state IN ('pending', 'held') AND d.rep = 0 AND (d.next_try <= ? OR "
            "d.attempts > 0) GROUP BY d.channel", (now,))
        return {channel: at for channel, at in rows}

    def has_alert(self, alert_id: str) -> bool:
        """Whether alert ``alert_id`` is stored (committed or written; not buffered)."""
        return self.db.execute("SELECT 1 FROM alerts WHERE id = ?",
                               (alert_id,)).fetchone() is not None

    # ---------------------------------------------------------------- outbox memory
    def thread(self, channel: str, incident_id: str) -> tuple[int, str, str | None] | None:
        """The incident thread on ``channel``: (messages sent, JSON of its first message,
        the provider's handle on it); None before its first message (``alerts.ledger``)."""
        row = self.db.execute("SELECT sent, root, ref FROM threads WHERE channel = ? AND "
                              "incident_id = ?", (channel, incident_id)).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2])

    def start_thread(self, channel: str, incident_id: str, sent: int, root: str,
                     ref: str | None, now: float) -> None:
        """(Re)start an incident thread at message ``root`` (JSON), ``sent`` messages in."""
        self.db.execute(
            "INSERT INTO threads (channel, incident_id, sent, root, ref, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, incident_id) DO UPDATE SET "
            "sent = excluded.sent, root = excluded.root, ref = excluded.ref, "
            "updated_at = excluded.updated_at", (channel, incident_id, sent, root, ref, now))

    def count_thread(self, channel: str, incident_id: str, sent: int, now: float) -> None:
        """An incident thread now holds ``sent`` messages."""
        self.count_threads(channel, [(incident_id, sent)], now)

    def count_threads(self, channel: str, counts: Sequence[tuple[str, int]],
                      now: float) -> None:
        """``count_thread`` for many ``(incident id, messages sent)``, one statement."""
        self.db.executemany("UPDATE threads SET sent = ?, updated_at = ? WHERE channel = ? "
                            "AND incident_id = ?",
                            [(sent, now, channel, incident) for incident, sent in counts])

    def send_times(self, channel: str, since: float) -> list[float]:
        """When ``channel`` sent its messages after ``since``, oldest first (rate limits)."""
        rows = self.db.execute("SELECT at FROM channel_sends WHERE channel = ? AND at > ? "
                               "ORDER BY at", (channel, since))
        return [float(r[0]) for r in rows]

    def record_send(self, channel: str, at: float, forget_before: float) -> None:
        """``channel`` sent a message at ``at``; its sends up to ``forget_before`` go."""
        self.db.execute("INSERT INTO channel_sends (channel, at) VALUES (?, ?)", (channel, at))
        self.db.execute("DELETE FROM channel_sends WHERE channel = ? AND at <= ?",
                        (channel, forget_before))

    # ---------------------------------------------------------------- audit log
    AUDIT_COLUMNS = ("seq", "at", "kind", "alert_id", "channel", "rep", "outcome", "detail",
                     "who", "via")
    """The columns ``audit_entries`` returns, in order."""

    def audit_delivery(self, at: float, alert_id: str, channel: str, rep: int, outcome: str,
                       detail: str | None) -> None:
        """Log one try of one page on one channel (``alerts.audit``)."""
        self.db.execute("INSERT INTO audit (at, kind, alert_id, channel, rep, outcome, detail, "
                        "alert_seq) VALUES (?, 'delivery', ?, ?, ?, ?, ?, (SELECT seq FROM "
                        "alerts WHERE id = ?))",
                        (at, alert_id, channel, rep, outcome, detail, _base_id(alert_id)))

    def audit_deliveries(self, rows: Sequence[tuple[float, str, str, int, str, str | None, int]]
                         ) -> None:
        """``audit_delivery`` for many: (at, delivery id, channel, rep, outcome, detail,
        the alert's seq; 0: not known, looked up)."""
        known = [r for r in rows if r[6]]
        if known:
            self.db.executemany("INSERT INTO audit (at, kind, alert_id, channel, rep, outcome, "
                                "detail, alert_seq) VALUES (?, 'delivery', ?, ?, ?, ?, ?, ?)",
                                known)
        for at, did, channel, rep, outcome, detail, seq in rows:
            if not seq:
                self.audit_delivery(at, did, channel, rep, outcome, detail)

    def record_action(self, at: float, kind: str, alert_id: str, outcome: str,
                      detail: str | None, who: str, via: str | None, key: str) -> None:
        """Log a responder's ack or resolve, once per ``key`` (a rebuild replays it)."""
        self.db.execute("INSERT INTO audit (at, kind, alert_id, outcome, detail, who, via, key, "
                        "alert_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT seq FROM alerts "
                        "WHERE id = ?)) ON CONFLICT DO NOTHING",
                        (at, kind, alert_id, outcome, detail, who, via, key, _base_id(alert_id)))

    def audit_entries(self, limit: int, alert_id: str | None = None,
                      kind: str | None = None) -> list[tuple[Any, ...]]:
        """The newest ``limit`` audit rows (``AUDIT_COLUMNS``), newest first; optionally
        only those of one alert (its repeats too) or of one kind."""
        where: list[str] = []
        args: list[object] = []
        if alert_id:
            where.append("(alert_id = ? OR alert_id LIKE ?)")
            args += [alert_id, f"{alert_id}-r%"]
            if self._BY_SEQ and self.has_alert(_base_id(alert_id)):
                # Through the index on its seq; an id that names no stored alert (a
                # summary's, a post's) is looked for row by row.
                where.append("alert_seq = (SELECT seq FROM alerts WHERE id = ?)")
                args.append(_base_id(alert_id))
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql = f"SELECT {', '.join(self.AUDIT_COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self.db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()

    # ---------------------------------------------------------------- projections
    def save_mentions(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Insert or refresh mention rows, values in ``MENTION_COLUMNS`` order."""
        if rows:
            self.db.executemany(_SAVE_MENTION, rows)

    def save_incidents(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Insert or refresh incidents: (id, brand, JSON body)."""
        if rows:
            self.db.executemany("INSERT INTO incidents (id, brand, body) VALUES (?, ?, ?) "
                                "ON CONFLICT(id) DO UPDATE SET body = excluded.body", rows)

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET value = excluded.value", (key, value))

    # ---------------------------------------------------------------- projection reads
    def mention_rows(self, open_only: bool, newest_first: bool = False
                     ) -> list[tuple[Any, ...]]:
        """Mention rows (``SHOWN_MENTION_COLUMNS``), by default only those still waiting
        for a public reply; newest first if asked (the dashboard)."""
        sql = f"SELECT {', '.join(SHOWN_MENTION_COLUMNS)} FROM mentions"
        if open_only:
            sql += " WHERE needs_reply = 1 AND replied_at IS NULL"
        if newest_first:
            sql += " ORDER BY created_at DESC"
        return self.db.execute(sql).fetchall()

    def mentions_between(self, start: float, end: float) -> list[tuple[Any, ...]]:
        """Mention rows (``SHOWN_MENTION_COLUMNS``) first posted in [start, end), oldest
        first (digests)."""
        return self.db.execute(
            f"SELECT {', '.join(SHOWN_MENTION_COLUMNS)} FROM mentions WHERE created_at >= ? "
            "AND created_at < ? ORDER BY created_at, post_id", (start, end)).fetchall()

    def first_mentions(self) -> dict[str, float]:
        """Per brand: when its first mention still kept was posted."""
        return {b: float(t) for b, t in self.db.execute(
            "SELECT brand, MIN(created_at) FROM mentions GROUP BY brand")}

    def mention_counts(self, start: float, end: float) -> dict[str, tuple[int, int]]:
        """Per brand: (mentions, negative mentions) first posted in [start, end)."""
        return {b: (int(n), int(neg or 0)) for b, n, neg in self.db.execute(
            "SELECT brand, COUNT(*), SUM(negative) FROM mentions WHERE created_at >= ? "
            "AND created_at < ? GROUP BY brand", (start, end))}

    def mention_times(self, brand: str, post_id: str) -> list[float]:
        """When the mention of ``brand`` by post ``post_id`` was posted (none if unknown)."""
        return [float(t) for (t,) in self.db.execute(
            "SELECT created_at FROM mentions WHERE brand = ? AND post_id = ?",
            (brand, post_id))]

    def first_negative(self, brand: str, start: float, end: float) -> float | None:
        """When the first negative mention of ``brand`` in [start, end] was posted."""
        row = self.db.execute("SELECT MIN(created_at) FROM mentions WHERE brand = ? AND "
                              "negative = 1 AND created_at >= ? AND created_at <= ?",
                              (brand, start, end)).fetchone()
        return None if row[0] is None else float(row[0])

    def negative_times(self, brand: str, start: float, end: float) -> list[float]:
        """When each negative mention of ``brand`` in [start, end) was posted."""
        return [t for (t,) in self.db.execute(
            "SELECT created_at FROM mentions WHERE brand = ? AND negative = 1 "
            "AND created_at >= ? AND created_at < ?", (brand, start, end))]

    def replied_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of the mentions ``keys`` are stored as replied to already."""
        known: set[str] = set()
        for i in range(0, len(keys), _PROBE_CHUNK):
            part = keys[i:i + _PROBE_CHUNK]
            known.update(r[0] for r in self.db.execute(
                "SELECT key FROM mentions WHERE replied_at IS NOT NULL AND key IN "
                f"({', '.join('?' * len(part))})", part))
        return known

    def incident_bodies(self, by_id: bool = False) -> list[str]:
        """Every incident's JSON, as stored (or by id)."""
        sql = "SELECT body FROM incidents" + (" ORDER BY id" if by_id else "")
        return [body for (body,) in self.db.execute(sql)]

    def alert_counts(self, start: float, end: float, types: Sequence[str]
                     ) -> list[tuple[str, str, int]]:
        """(brand, type, alerts) of the alerts of ``types`` raised in [start, end)."""
        marks = ", ".join("?" for _ in types)
        return [(b, t, int(n)) for b, t, n in self.db.execute(
            f"SELECT brand, type, COUNT(*) FROM alerts WHERE at >= ? AND at < ? AND type IN "
            f"({marks}) GROUP BY brand, type", (start, end, *types))]

    def incident_alerts(self, types: Sequence[str], before: float
                        ) -> list[tuple[str, float, str]]:
        """(type, at, incident id) of the incidents' alerts of ``types`` raised before
        ``before``."""
        marks = ", ".join("?" for _ in types)
        return self.db.execute(
            f"SELECT type, at, incident_id FROM alerts WHERE incident_id IS NOT NULL AND "
            f"type IN ({marks}) AND at < ?", (*types, before)).fetchall()

    def alerts_of_type(self, kind: str) -> list[Alert]:
        """Every alert of type ``kind``, in the order raised."""
        self._write_buffered()
        rows = self.db.execute("SELECT body FROM alerts WHERE type = ? ORDER BY seq", (kind,))
        return [Alert.from_record(msgspec.json.decode(r[0])) for r in rows]

    def latest_alerts(self, types: Sequence[str], post_ids: Sequence[str]
                      ) -> dict[tuple[str, str], str]:
        """(post id, brand) -> id of the newest alert of ``types`` about that post."""
        latest: dict[tuple[str, str], str] = {}
        marks = ", ".join("?" for _ in types)
        for start in range(0, len(post_ids), _PROBE_CHUNK):
            chunk = post_ids[start:start + _PROBE_CHUNK]
            rows = self.db.execute(
                f"SELECT post_id, brand, id FROM alerts WHERE type IN ({marks}) AND post_id "
                f"IN ({', '.join('?' for _ in chunk)}) ORDER BY seq", (*types, *chunk))
            latest.update({(p, b): a for p, b, a in rows})
        return latest

    # ---------------------------------------------------------------- SQLite upkeep
    def wait_when_locked(self, ms: int) -> None:
        """How long a write waits for another process's lock before it fails."""
        self.db.execute(f"PRAGMA busy_timeout={int(ms)}")

    def in_wal_mode(self) -> bool:
        """A file in WAL mode, whose log a ``checkpoint`` folds back (``monitor.walcheck``)."""
        if self.path == ":memory:":
            return False
        return str(self.db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"

    def auto_checkpoint(self, pages: int) -> None:
        """SQLite's own checkpoint after ``pages`` pages of log (0: off; 1000: default)."""
        self.db.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0: none)."""
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def finish_checkpoint(self) -> bool:
        """Fold the last frames of the log back on this (the writer's) connection, between
        transactions. A pass from another connection never catches up with a busy writer,
        so SQLite never started the log again from its beginning and it grew without end
        (7.7 GB in a 300k-post ingest, all read back on open after a kill -9); once every
        frame is in the file, the next write starts it again, and ``journal_size_limit``
        cuts the file back. False: a transaction is open or a reader held frames back."""
        if self.db.in_transaction:
            return False
        busy, frames, done = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return busy == 0 and frames == done

    def checkpoint(self) -> None:
        """Fold the log back into the file without waiting for readers (PASSIVE), on a
        connection of its own: safe from another thread, shares nothing with this one.
        Notes how long the log was (``wal_log_bytes``)."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            _busy, frames, _done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            page = db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            db.close()
        self._log_bytes = max(0, int(frames)) * int(page)

    def wal_log_bytes(self) -> int:
        """How much the log held at the last ``checkpoint`` pass: its frames since it last
        started over, not the file's size, which ``journal_size_limit`` leaves at up to
        ``WAL_KEEP_BYTES`` after the log starts again (0: no pass yet)."""
        return self._log_bytes
