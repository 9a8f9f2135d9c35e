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

A disk that refuses writes (full, read-only, gone) never stops ingest: the failure is
logged once, the posts that could not be recorded are counted (``dropped``, shown in
``/metrics``), and writing is tried again every ``retry_every`` seconds, in a new file,
until it works ("recording recovered"). A new file that could not take a single line is
removed again, so a long outage does not leave a trail of empty files behind.
"""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, cast

import msgspec
import structlog

from monitor.clock import Clock

log = structlog.get_logger(__name__)

_encoder = msgspec.json.Encoder()

RETRY_EVERY = 10.0
"""Seconds between tries while the disk refuses writes (each try opens a new file)."""


class Recorder:
    """Appends raw objects to the current file, opening a new one when it is time."""

    def __init__(self, folder: Path, clock: Clock, *, compress: bool = True,
                 rotate_every: float = 3600.0, rotate_bytes: int = 64 * 1024 * 1024,
                 prefix: str = "live", retry_every: float = RETRY_EVERY) -> None:
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
        self.retry_every = retry_every
        self._opened_at = 0.0
        self._bytes = 0
        self._announced = True
        self.failing = False
        """True from a failed write until one works again."""
        self.failed_writes = 0
        """Writes (batches) that failed, counting the ones skipped between tries."""
        self.dropped = 0
        """Objects ingested but not recorded."""
        self._retry_at = 0.0
        self._dropped_at_failure = 0

    def write(self, objs: Sequence[Any]) -> None:
        """Append ``objs``, one JSON line each. A disk problem is logged, never raised:
        recording must not stop ingest."""
        if not objs:
            return
        now = self.clock.now()
        if self.failing and now < self._retry_at:
            self.failed_writes += 1
            self.dropped += len(objs)
            return
        data = b"".join(_encoder.encode(o) + b"\n" for o in objs)
        try:
            out = self._current()
            out.write(data)
            out.flush()
        except OSError as exc:
            self._failed(exc, len(objs), now)
            return
        if not self._announced:
            log.info("recording to", path=str(self.path))
            self._announced = True
        if self.failing:
            log.info("recording recovered", path=str(self.path),
                     dropped=self.dropped - self._dropped_at_failure)
            self.failing = False
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
        try:
            # A binary file, though typeshed does not call GzipFile an IO[bytes].
            out = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5)) \
                if self.compress else raw
        except OSError:  # the gzip header did not fit: leave no empty file behind
            with contextlib.suppress(OSError):
                raw.close()
            path.unlink(missing_ok=True)
            raise
        self._raw = raw
        self.path = path
        self._opened_at = now
        self._bytes = 0
        self._announced = False  # said once its first line is written
        return out

    def _failed(self, exc: OSError, n: int, now: float) -> None:
        self.failed_writes += 1
        self.dropped += n
        self._retry_at = now + self.retry_every
        if not self.failing:
            self.failing = True
            self._dropped_at_failure = self.dropped - n
            log.error("recording failed; posts are still ingested, not recorded, until it "
                      "works again", path=str(self.path), error=str(exc),
                      retry_every_s=self.retry_every)
        empty = self._out is not None and not self._announced
        self._close_quietly()
        if empty and self.path is not None:  # not one line made it: no file is better
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _close_quietly(self) -> None:
        try:
            self.close()
        except OSError:
            self._out = self._raw = None
