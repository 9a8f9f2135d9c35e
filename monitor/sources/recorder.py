"""Recording: the raw posts the live sources took in, as rotating JSONL(.gz) feed files.

Each accepted object is written exactly as it arrived (before normalisation), one per
line, in the recorded-feed format (contract section 2), so ``crisismon replay`` on the
files shows an analyst what the daemon saw. Objects are written before their batch is
stored: a crash can leave a post in the recording that the store never got (the source
fetches it again and the replay's dedupe drops the repeat), never the other way round.

Files rotate by time and by size; names carry the UTC time the file was opened
(``live-20260520T082301Z.jsonl.gz``), so ``ls`` order is time order. A gzip member is
flushed after every write, so a crash loses at most the line being written and the
feed reader keeps everything before it.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec
import structlog

from monitor.clock import Clock

log = structlog.get_logger(__name__)

_encoder = msgspec.json.Encoder()


class Recorder:
    """Appends raw objects to the current file, opening a new one when it is time."""

    def __init__(self, folder: Path, clock: Clock, *, compress: bool = True,
                 rotate_every: float = 3600.0, rotate_bytes: int = 64 * 1024 * 1024,
                 prefix: str = "live") -> None:
        self.folder = folder
        self.clock = clock
        self.compress = compress
        self.rotate_every = rotate_every
        self.rotate_bytes = rotate_bytes
        self.prefix = prefix
        self.path: Path | None = None
        self.lines = 0
        self._out: IO[bytes] | None = None
        self._raw: IO[bytes] | None = None
        self._opened_at = 0.0
        self._bytes = 0
        self._failing = False

    def write(self, objs: Sequence[Any]) -> None:
        """Append ``objs``, one JSON line each. A disk problem is logged, never raised:
        recording must not stop ingest."""
        if not objs:
            return
        data = b"".join(_encoder.encode(o) + b"\n" for o in objs)
        try:
            out = self._current()
            out.write(data)
            out.flush()
        except OSError as exc:
            if not self._failing:
                log.error("recording failed; posts are still ingested", path=str(self.path),
                          error=str(exc))
                self._failing = True
            self._close_quietly()
            return
        if self._failing:
            log.info("recording recovered", path=str(self.path))
            self._failing = False
        self._bytes += len(data)
        self.lines += len(objs)

    def close(self) -> None:
        """Finish the current file (a complete gzip trailer)."""
        out, raw = self._out, self._raw
        self._out = self._raw = None
        try:
            if out is not None:
                out.close()
        finally:
            if raw is not None and raw is not out:
                raw.close()  # GzipFile does not close a file object it was handed

    def _current(self) -> IO[bytes]:
        now = self.clock.now()
        if self._out is not None and (now - self._opened_at >= self.rotate_every
                                      or self._bytes >= self.rotate_bytes):
            self.close()
        if self._out is None:
            self._out = self._open(now)
        return self._out

    def _open(self, now: float) -> IO[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        path = self.folder / f"{self.prefix}-{stamp}{suffix}"
        n = 1
        while path.exists():  # two rotations in one second, or a restart: never append
            path = self.folder / f"{self.prefix}-{stamp}-{n}{suffix}"
            n += 1
        raw = path.open("xb")
        out: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5) \
            if self.compress else raw
        self._raw = raw
        self.path = path
        self._opened_at = now
        self._bytes = 0
        log.info("recording to", path=str(path))
        return out

    def _close_quietly(self) -> None:
        try:
            self.close()
        except OSError:
            self._out = self._raw = None
