"""The live daemon's alert log: ``alerts.jsonl``, one contract record per alert, once each."""

from __future__ import annotations

import json
import os
from datetime import tzinfo
from pathlib import Path

from alerts.record import Alert


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

    async def send(self, alert: Alert) -> None:
        if alert.id in self._ids:
            return
        self._fh.write(alert.to_json(self.tz) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._ids.add(alert.id)

    def close(self) -> None:
        self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
