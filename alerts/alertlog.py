"""The live daemon's alert log: ``alerts.jsonl``, one contract record per alert, once each."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from datetime import tzinfo
from pathlib import Path

from rules.records import Alert


class AlertLogChannel:
    """Appends each alert to a JSON Lines file and fsyncs it.

    Delivered through the outbox like any channel, so it is at-least-once; the ids
    already in the file are remembered so a retry after a crash never writes a line twice.
    """

    name = "log"

    def __init__(self, path: Path, tz: tzinfo) -> None:
        self.path = path
        self.tz = tz
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        self._ids.add(json.loads(line)["id"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line from a crash: rewritten below
        self._fh = path.open("a", encoding="utf-8")
        if path.stat().st_size and not _ends_with_newline(path):
            self._fh.write("\n")  # end a torn line so the next record starts clean

    async def send(self, alert: Alert, thread: object = None) -> None:
        """Append one alert (unless already in the file) and fsync."""
        self._append([(alert.id, alert.to_json(self.tz))])

    async def send_batch(self, items: list[tuple[Alert, object]]) -> list[None]:
        """Append many alerts with one write and one fsync (the outbox's batch).

        An fsync per alert cost more than the rest of a delivery; here it runs in a
        thread so the event loop keeps ingesting meanwhile."""
        lines = [(alert.id, alert.to_json(self.tz)) for alert, _thread in items
                 if alert.id not in self._ids]
        if lines:
            await asyncio.to_thread(self._append, lines)
        return [None] * len(items)

    def _append(self, lines: list[tuple[str, str]]) -> None:
        # Under the lock, and the ids noted only after the fsync, in the same thread: a
        # cancelled await (shutdown) leaves this to finish, so the outbox's final flush
        # neither writes a line twice nor counts an unwritten one as written.
        with self._lock:
            fresh: dict[str, str] = {}
            for aid, line in lines:
                if aid not in self._ids and aid not in fresh:
                    fresh[aid] = line
            if not fresh:
                return
            self._fh.write("".join(f"{line}\n" for line in fresh.values()))
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._ids.update(fresh)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
