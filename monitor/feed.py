"""Recorded feeds: JSON Lines (optionally gzip), one Weibo-API-shaped object a line.

Reading never stops at a bad line: it is reported with its file and line number,
counted, and skipped (contract section 2).
"""

from __future__ import annotations

import gzip
import heapq
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from monitor.normalise import BadInput, invalid_utf8, plain_post, to_event
from rules.records import Event

_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class BadLine:
    """One skipped line, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class FeedStats:
    """What reading feeds found: lines read, events kept, lines skipped."""

    lines: int = 0
    events: int = 0
    bad: list[BadLine] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.bad)


def feed_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a feed file (one line, with the fix), or None."""
    if path.is_dir():
        return (f"{path}: is a directory, not a feed file (give the files in it, e.g. "
                f"{path}/*.jsonl)")
    if not path.exists():
        return f"{path}: no such feed file"
    if not path.is_file():
        return f"{path}: not a regular file (a feed is a .jsonl or .jsonl.gz file)"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable (check its permissions)"
    return None


def open_text(path: Path) -> IO[str]:
    """Open a feed for reading, transparently un-gzipping ``.gz`` files."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return path.open("r", encoding="utf-8", errors="strict")


def iter_feed(path: Path, stats: FeedStats) -> Iterator[Event]:
    """Yield the events of one feed file in file order, recording bad lines in ``stats``."""
    name = str(path)
    for lineno, line in feed_lines(path, stats):
        parsed = parse_line(line, name, lineno, f"{path.name}:{lineno}")
        if isinstance(parsed, BadLine):
            stats.bad.append(parsed)
            continue
        stats.events += 1
        yield parsed


def feed_lines(path: Path, stats: FeedStats) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of one feed file with their line numbers, counted in
    ``stats.lines``; an unreadable (truncated or corrupt gzip) rest is a bad line."""
    name = str(path)
    with path.open("rb") as raw:
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        lineno = 0
        while True:
            try:
                line = stream.readline()
            except (OSError, EOFError) as exc:  # truncated or corrupt gzip: keep what we have
                stats.bad.append(BadLine(name, lineno + 1, f"unreadable: {exc}"))
                return
            if not line:
                return
            lineno += 1
            if not line.strip():
                continue
            stats.lines += 1
            yield lineno, line


def feed_line_list(path: Path, stats: FeedStats) -> tuple[list[int], list[bytes]]:
    """``feed_lines`` of ``path`` as two lists, line numbers and lines. A plain file with no
    carriage return (the usual feed) is read whole and split in C (``readline`` a line at
    a time, in a generator, cost ~1 µs a line); its lines are the same bytes."""
    if path.suffix != ".gz":
        with path.open("rb") as raw:
            data = raw.read()
        if b"\r" not in data:  # else bytes.splitlines would split there too
            split = data.splitlines(keepends=True)
            del data
            numbers = [n for n, line in enumerate(split, 1) if line.strip()]
            if len(numbers) != len(split):
                split = [split[n - 1] for n in numbers]
            stats.lines += len(split)
            return numbers, split
    numbers, lines = [], []
    for lineno, line in feed_lines(path, stats):
        numbers.append(lineno)
        lines.append(line)
    return numbers, lines


def parse_line(line: bytes, name: str, lineno: int, source: str,
               simplify: bool = True, created_at: float | None = None) -> Event | BadLine:
    """One feed line as an event, or why it is bad (``name``:``lineno`` in the report).
    ``simplify`` False: see ``to_event``. ``created_at``: the time of the line's
    ``created_at`` (``parse_time``), if read already."""
    post = plain_post(line, source, simplify, created_at)  # the usual shape, typed
    if post is not None:
        return post
    try:
        obj = _decoder.decode(line)
    except UnicodeDecodeError:
        return BadLine(name, lineno, "not valid UTF-8")
    except msgspec.DecodeError as exc:
        if invalid_utf8(line) is not None:
            return BadLine(name, lineno, "not valid UTF-8")
        return BadLine(name, lineno, f"not valid JSON ({exc})")
    except RecursionError:  # msgspec's answer to [[[[...]]]] thousands deep
        return BadLine(name, lineno, "not valid JSON (nested too deeply)")
    try:
        return to_event(obj, source, simplify)
    except BadInput as exc:
        return BadLine(name, lineno, str(exc))


def read_feeds(paths: Iterable[Path], stats: FeedStats) -> list[Event]:
    """All events of several feeds, in time order (stable: file order breaks ties).

    Feeds are usually sorted already; each file is sorted on its own (cheap when it
    is), then the files are merged, so a replay is the same whatever the input order
    inside a file.
    """
    per_file: list[list[tuple[float, int, int, Event]]] = []
    for fi, path in enumerate(paths):
        events = [(e.created_at, fi, i, e) for i, e in enumerate(iter_feed(path, stats))]
        events.sort(key=lambda x: (x[0], x[2]))
        per_file.append(events)
    return [item[3] for item in heapq.merge(*per_file, key=lambda x: (x[0], x[1], x[2]))]
