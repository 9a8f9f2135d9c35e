"""``monitor.walcheck``: the live store's WAL is checkpointed from a thread, not in COMMIT."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from monitor import walcheck
from monitor.store import Store
from monitor.store import sqlite as sqlite_store
from monitor.walcheck import Checkpointer


def _log_frames(path: Path) -> int:
    """Frames in the WAL since it last started over (a checkpoint of all of it lets the
    next transaction start it over), read by a checkpoint that copies them."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_autocheckpoint=0")
        return db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        db.close()


def _write(store: Store, n: int) -> None:
    """``n`` pages or so in one transaction, then a small one (new values each time:
    SQLite writes no page for a value it already holds)."""
    _write.calls += 1  # type: ignore[attr-defined]
    fill = str(_write.calls % 10) * 3000  # type: ignore[attr-defined]
    with store.transaction():
        for i in range(n):
            store.set_meta(f"k{i}", fill)
    with store.transaction():
        store.set_meta("after", fill[:10])


_write.calls = 0  # type: ignore[attr-defined]


async def test_checkpoints_run_off_the_store_connection(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    _write(store, 2000)
    # SQLite's own: checkpointed in the first COMMIT, so the second started the log over.
    assert _log_frames(path) < 100
    assert Checkpointer.applies(store)
    assert not Checkpointer.applies(Store(":memory:"))
    checkpointer = Checkpointer(store, every=3600.0)
    task = asyncio.create_task(checkpointer.run())
    await asyncio.sleep(0)  # it turns the store's own off first thing
    _write(store, 2000)
    assert _log_frames(path) > 2000  # no COMMIT checkpointed: the log went on
    _write(store, 2000)
    checkpointer._checkpoint()  # what a pass does, in its thread
    assert checkpointer.passes == 1 and checkpointer.failures == 0
    _write(store, 10)
    assert _log_frames(path) < 100  # the pass copied it all: the log started over
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    store.close()
    reopened = Store(path)
    assert reopened.get_meta("k9") == str(_write.calls % 10) * 3000  # type: ignore[attr-defined]
    reopened.close()


async def test_a_pass_the_writer_outran_is_finished_on_the_writer_connection(
        tmp_path: Path) -> None:
    """A pass from another connection copies only what was committed when it began; the
    writer commits more meanwhile, so the log never starts over and grew without end
    (7.7 GB in a 300k-post ingest). ``finish_checkpoint`` copies the rest on the writer's
    connection, between transactions, and the next write starts the log over."""
    path = tmp_path / "s.db"
    store = Store(path)
    checkpointer = Checkpointer(store, every=3600.0)
    task = asyncio.create_task(checkpointer.run())
    await asyncio.sleep(0)  # the store's own checkpoint is off
    _write(store, 2000)
    store.begin()
    store.set_meta("racing", "x" * 3000)  # the writer is mid-transaction ...
    checkpointer._checkpoint()  # ... while the pass runs in its thread
    assert store.finish_checkpoint() is False  # never inside a transaction
    store.commit()
    _write(store, 10)
    assert store.wal_bytes() > 0
    assert store.finish_checkpoint() is True
    _write(store, 10)
    assert _log_frames(path) < 100  # the log started over
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_bulk_writer_waits_for_a_pass_once_the_log_is_past_its_length(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The retention writes the log faster than a pass copies it: with the passes alone
    the log grew to hundreds of MB between two, and the commit after each cut ~100 MB off
    the file on the loop. ``make_room`` has a pass run as soon as the log is past its
    kept length and returns once it is over, so the log starts over near that length."""
    for module in (walcheck, sqlite_store):  # the check, and the file's cut (at open)
        monkeypatch.setattr(module, "WAL_KEEP_BYTES", 1024 * 1024)
    path = tmp_path / "s.db"
    store = Store(path)
    checkpointer = Checkpointer(store, every=3600.0)  # no pass of its own in this test
    task = asyncio.create_task(checkpointer.run())
    await asyncio.sleep(0)
    _write(store, 10)
    await checkpointer.make_room()  # a short log: at once, no pass
    assert checkpointer.passes == 0
    _write(store, 2000)  # ~8 MB of log
    assert store.wal_bytes() > walcheck.WAL_KEEP_BYTES
    await asyncio.wait_for(checkpointer.make_room(), 60)
    assert checkpointer.passes == 1 and checkpointer.failures == 0
    _write(store, 10)
    assert _log_frames(path) < 100  # every frame copied: the log started over
    await checkpointer.make_room()  # the file is cut back: no pass wanted any more
    assert checkpointer.passes == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.close()


async def test_a_pass_is_finished_on_the_loop_only_when_the_log_itself_is_long(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the log starts over its file keeps its size (up to ``WAL_KEEP_BYTES``), so
    the file's size said "finish" after every pass: the loop copied the last second's
    frames and synced both files each second (42 ms p50, 317 ms max at load 8). The
    length the pass found is what says whether the log outran the passes."""
    monkeypatch.setattr(walcheck, "RESET_ABOVE", 1 << 20)
    path = tmp_path / "s.db"
    store = Store(path)
    _write(store, 2000)  # SQLite's own checkpoint: the log started over, its file stayed
    finished: list[bool] = []
    real = store.finish_checkpoint
    monkeypatch.setattr(store, "finish_checkpoint", lambda: finished.append(real()) or True)
    checkpointer = Checkpointer(store, every=0.005)
    task = asyncio.create_task(checkpointer.run())
    try:
        await asyncio.sleep(0)
        _write(store, 10)
        async with asyncio.timeout(10):
            while checkpointer.passes < 3:  # noqa: ASYNC110 - passes are counted, not signalled
                await asyncio.sleep(0.005)
        assert store.wal_bytes() > walcheck.RESET_ABOVE > store.wal_log_bytes()
        assert finished == []  # a long file, a short log: nothing for the loop to do
        _write(store, 2000)  # a log past RESET_ABOVE
        async with asyncio.timeout(10):
            while not finished:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
