"""Write-behind: a store's SQLite connection in a forked process of its own.

For the replay's own database only (``Store(..., write_behind=True)``: exclusive, not
durable, rebuilt on every run). The replay's process spends about a quarter of its time
inside SQLite inserting the rows it buffers (events, alerts, mention rows: ~1.3 s of CPU
on a 100,000-post day with 131,722 alerts); here those inserts run on the second core
while the replay goes on with the next batch.

``WriteBehind`` stands in for the ``sqlite3.Connection`` the store uses: every
statement is sent, in order, to the writer process, which runs it on its own
connection. Statements whose answer nobody reads (``executemany`` of buffered rows,
``BEGIN``, ``COMMIT``, savepoints) are sent without waiting; any other ``execute``
waits for its rows, so it sees every write sent before it (one connection, one order).
A write that failed fails the next statement that waits, and ``close``: the replay
fails, as it would have at the write itself. The secondary indexes of the tables loaded in
bulk are built once the rows are in (``hold_indexes``), before anything reads them.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from monitor import workers

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

NO_ANSWER = frozenset({"BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT step", "RELEASE step"})
"""Statements sent without waiting: their caller reads nothing back."""


class Rows:
    """What a waited-for ``execute`` answered: the part of a cursor the store uses."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class WriteBehind:
    """The store's connection, run by a forked writer process (see the module doc)."""

    def __init__(self, path: str, pragmas: Sequence[str]) -> None:
        started = workers.start(_writer_process, path, list(pragmas), name="crisismon-store")
        if started is None:
            raise OSError("no process for the store's writer")
        self._proc, self._conn = started
        self.in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        if sql in NO_ANSWER:
            self._send(("x", sql, list(params)))
            if sql == "BEGIN IMMEDIATE":
                self.in_transaction = True
            elif sql == "COMMIT":
                self.in_transaction = False
            return Rows([])
        rows = self._ask(("q", sql, list(params)))
        if sql.startswith(("COMMIT", "ROLLBACK")) and not sql.startswith("ROLLBACK TO"):
            self.in_transaction = False
        elif sql.startswith("BEGIN"):
            self.in_transaction = True
        return Rows([tuple(r) for r in rows])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._send(("m", sql, rows))

    def executescript(self, script: str) -> None:
        self._ask(("s", script, []))

    def hold_indexes(self, names: Sequence[str]) -> None:
        """Drop the indexes ``names`` until they are needed: the writer makes them again
        (as they were) before the first question once any row was written, when asked
        (``restore_indexes``), or at the close.

        For indexes of tables about to be filled in bulk: one pass over the loaded rows
        builds an index for less than keeping it in order row by row (the heavy day's
        four on alerts and mentions: 7 % fewer instructions in the writer, ~0.1 s). Any
        read still finds them (a read without ORDER BY may return rows in an index's
        order), and so does the database left behind."""
        self._ask(("h", "", list(names)))

    def restore_indexes(self) -> None:
        """Make the indexes ``hold_indexes`` dropped now, without waiting: the bulk load
        is over, and the writer builds them while the caller goes on."""
        self._send(("i", "", []))

    def close(self) -> None:
        """Wait for every write, close the writer's connection, reap it; raises what a
        write sent without waiting raised."""
        if self._conn is None:
            return
        try:
            self._ask(("c", "", []))
        finally:
            self._conn.close()
            self._conn = None
            self._proc.join()

    def abandon(self) -> None:
        """End the writer without waiting for its writes (the replay failed: its database
        is made again on the next run)."""
        if self._conn is None:
            return
        self._conn.close()  # the writer ends on EOF
        self._conn = None
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()

    def _send(self, msg: tuple[Any, ...]) -> None:
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        workers.write_frame(self._conn.fileno(), _encode(msg))

    def _ask(self, msg: tuple[Any, ...]) -> list[Any]:
        self._send(msg)
        try:
            answer = self._conn.recv_bytes()
        except EOFError:
            raise sqlite3.OperationalError(
                f"the store's writer process ended (exit code {self._proc.exitcode})") from None
        if answer[:1] == b"E":
            raise pickle.loads(answer[1:])
        return _decode(answer[1:])  # type: ignore[no-any-return]


def _writer_process(conn: Any, path: str, pragmas: list[str]) -> None:
    """The writer: run each statement in the order sent; answer those waited for."""
    # No cycle collection: what it makes (rows, answers) is freed by reference counting,
    # and the collector's passes would walk the replay's heap, inherited by the fork.
    gc.freeze()
    gc.disable()
    _bind_as_they_are()
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in pragmas:
        db.execute(pragma)
    inbox: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()

    def receive() -> None:
        # Drained at once, so the replay never waits for a full pipe while a batch is
        # being inserted here.
        while True:
            try:
                inbox.put(workers.read_frame(conn.fileno()))
            except (EOFError, OSError):
                inbox.put(None)
                return

    threading.Thread(target=receive, name="store-inbox", daemon=True).start()
    failed: BaseException | None = None
    held = _HeldIndexes()
    while (msg := inbox.get()) is not None:
        kind, sql, args = _decode(msg)
        if kind in ("m", "x", "i"):  # nobody waits: a failure is told at the next question
            if failed is None:
                try:
                    if kind == "m":
                        db.executemany(sql, args)
                    elif kind == "x":
                        db.execute(sql, args)
                    else:
                        held.restore(db, asked=True)
                except Exception as exc:
                    failed = exc
            continue
        if failed is not None:
            _answer_error(conn, failed)
        else:
            try:
                rows = _answer(db, held, kind, sql, args)
            except Exception as exc:
                _answer_error(conn, exc)
            else:
                conn.send_bytes(b"R" + _encode(rows))
        if kind == "c":
            break
    with contextlib.suppress(Exception):
        db.close()


def _bind_as_they_are() -> None:
    """Register bytes and None as their own adapters (in the writer's process only)."""
    # sqlite3 binds int, float, str and bytearray at once, but looks up an adapter for any
    # other value, and a miss raises and clears an AttributeError each time: the heavy
    # day's 335,000 bytes (bodies, decisions) and 132,000 None values cost ~0.1 s of the
    # writer's CPU that way. A registered adapter is found without that; what it
    # returns is bound as before (bytes as a BLOB, None as NULL).
    sqlite3.register_adapter(bytes, bytes)
    sqlite3.register_adapter(type(None), _null)


def _null(value: None) -> None:
    return value


class _HeldIndexes:
    """The indexes ``WriteBehind.hold_indexes`` dropped: (name, the SQL that made it)."""

    def __init__(self) -> None:
        self._indexes: list[tuple[str, str]] = []
        self._changes = 0
        """The connection's count of rows written, when they were dropped."""

    def hold(self, db: sqlite3.Connection, names: Sequence[str]) -> None:
        for name in names:
            row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' "
                             "AND name = ?", (name,)).fetchone()
            if row is not None:
                db.execute(f'DROP INDEX "{name}"')
                self._indexes.append((name, row[0]))
        self._changes = db.total_changes

    def restore(self, db: sqlite3.Connection, asked: bool) -> None:
        """Make the held indexes again: when ``asked`` (``restore_indexes``, the close),
        and before a question once any row was written since they were dropped (a read
        of tables as they were then needs none)."""
        if not self._indexes or (db.total_changes == self._changes and not asked):
            return
        for name, sql in self._indexes:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                          (name,)).fetchone() is None:
                db.execute(sql)
        # Made inside a transaction, they are undone if it rolls back: made again then.
        if not db.in_transaction:
            self._indexes = []


def _answer(db: sqlite3.Connection, held: _HeldIndexes, kind: str, sql: str,
            args: list[Any]) -> list[Any]:
    """Run a statement waited for (``kind``: "q" execute, "s" script, "h" hold indexes,
    "c" close); the rows it answers."""
    held.restore(db, asked=kind == "c")
    if kind == "h":
        held.hold(db, args)
        return []
    if kind == "q":
        return db.execute(sql, args).fetchall()  # type: ignore[no-any-return]
    if kind == "s":
        db.executescript(sql)
    else:  # "c": every write is done
        db.close()
    return []


def _answer_error(conn: Any, exc: BaseException) -> None:
    try:
        body = pickle.dumps(exc)
    except Exception:
        body = pickle.dumps(sqlite3.OperationalError(f"{type(exc).__name__}: {exc}"))
    conn.send_bytes(b"E" + body)
