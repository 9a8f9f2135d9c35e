"""The live daemon's alert log: ``alerts.jsonl``, one contract record per alert, once each."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import tzinfo
from pathlib import Path

import msgspec

from rules.records import Alert

RECENT_IDS = 32_000
"""Ids of the last lines written that are remembered (read back from the file's end at
start): 16 of the outbox's batches (``alerts.outbox.BATCH_MAX``, 2,000), several times the
batches it may have in flight (``alerts.outbox.WINDOWS_IN_FLIGHT``)."""
TAIL_BYTES = 32 * 1024 * 1024
"""How much of the file's end is read at start for them (~50,000 lines of ~650 bytes)."""


class _Id(msgspec.Struct):
    id: str


_id_decoder = msgspec.json.Decoder(_Id)


class AlertLogChannel:
    """Appends each alert to a JSON Lines file and fsyncs it.

    Delivered through the outbox like any channel, so it is at-least-once; the ids of
    the last lines written are remembered so a retry after a crash never writes a line
    twice. Only the last ones: the outbox's one worker per channel has at most a few
    batches in flight (``alerts.outbox.WINDOWS_IN_FLIGHT``, each ``BATCH_MAX`` at most)
    and records each before it claims past that bound, so the lines written but not
    recorded when the process died are among the last few batches, and the next start
    sends their deliveries (still pending) first, in due order. Reading every id the
    file ever held made the start grow with all history (160,871 lines parsed, ~1 s, at
    300k posts) and kept them all in memory for as long as the daemon ran.
    """

    name = "log"

    def __init__(self, path: Path, tz: tzinfo) -> None:
        self.path = path
        self.tz = tz
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ids: set[str] = set()
        self._order: collections.deque[str] = collections.deque()
        """``_ids`` in the order written: the oldest are forgotten past ``RECENT_IDS``."""
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertlog")
        """Runs the batches' writes one after another, in the order they were handed in."""
        if path.exists():
            self._remember(_tail_ids(path))
        self._fh = path.open("ab")
        if path.stat().st_size and not _ends_with_newline(path):
            self._fh.write(b"\n")  # end a torn line so the next record starts clean

    async def send(self, alert: Alert, thread: object = None) -> None:
        """Append one alert (unless already in the file) and fsync."""
        self._append([(alert.id, alert.to_json_bytes(self.tz))])

    async def send_batch(self, items: list[tuple[Alert, object]]) -> list[None]:
        """Append many alerts with one write and one fsync (the outbox's batch).

        An fsync per alert cost more than the rest of a delivery; here it runs in a
        thread so the event loop keeps ingesting meanwhile. One thread for every batch:
        with several batches in flight (``alerts.outbox.WINDOWS_IN_FLIGHT``) they are
        written in the order they were handed over, so the file keeps the alerts' order."""
        # The alert's line as UTF-8, cached on it by the store that encoded it (the same
        # bytes ``to_json`` gives as text): the file is written in bytes, nothing encoded
        # again per line.
        lines = [(alert.id, alert.to_json_bytes(self.tz)) for alert, _thread in items
                 if alert.id not in self._ids]
        if lines:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._append, lines)
        return [None] * len(items)

    def _append(self, lines: list[tuple[str, bytes]]) -> None:
        # Under the lock, and the ids noted only after the fsync, in the same thread: a
        # cancelled await (shutdown) leaves this to finish, so the outbox's final flush
        # neither writes a line twice nor counts an unwritten one as written.
        with self._lock:
            fresh: dict[str, bytes] = {}
            for aid, line in lines:
                if aid not in self._ids and aid not in fresh:
                    fresh[aid] = line
            if not fresh:
                return
            self._fh.write(b"\n".join(fresh.values()) + b"\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._remember(fresh)

    def _remember(self, ids: Iterable[str]) -> None:
        for aid in ids:
            if aid not in self._ids:
                self._ids.add(aid)
                self._order.append(aid)
        while len(self._order) > RECENT_IDS:
            self._ids.discard(self._order.popleft())

    def close(self) -> None:
        self._writer.shutdown(wait=True)  # a batch being written is finished first
        with self._lock:
            self._fh.close()


def _tail_ids(path: Path) -> list[str]:
    """The ids of the whole lines in the last ``TAIL_BYTES`` of ``path``, oldest first
    (a torn last line from a crash is passed over: it is ended below and its alert
    written again)."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_BYTES)
        fh.seek(start)
        data = fh.read()
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]  # the first is cut (or whole by chance: one id fewer)
    ids = []
    for line in lines:
        try:
            ids.append(_id_decoder.decode(line).id)
        except msgspec.DecodeError:  # (ValidationError too: a subclass)
            continue
    return ids


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
