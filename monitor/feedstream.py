"""Feeds read by a second process while the replay handles the events already read.

``read_feeds`` reads and normalises a whole day before its first event is handled (~4 s of
the 100,000-post day in ``bench/replay_throughput.py``), because the events are replayed in
time order and a file's last line may be its earliest. ``FeedReader`` gives the same events
in the same order, in chunks, while it is still reading:

1. a first pass reads every line and only its ``created_at`` (a typed decode that skips the
   rest of the line: ~0.5 µs a line), and sorts the lines as ``read_feeds`` sorts the
   events: by time, then file, then line;
2. a second pass parses and normalises the lines in that order and hands them over a
   chunk at a time.

In a forked process (``monitor.workers``) the second pass runs beside the replay, on the
second core; the first runs in the replay's process (idle until the first chunk) while
the reader loads the models, and its lines are sent over (``FeedReader._send_lines``).
The chunks cross the pipe as msgpack (``msgspec`` decodes a chunk straight into the
``Post``/``Action`` dataclasses, ~5x cheaper than unpickling them). Given an
``assessor``, the reader also does the pipeline's pure work on each chunk there: brand
matching and scoring (``rules.scoring.assess_posts``), batch by batch as the replay's
``Pipeline.prepare`` would, so the replay's process only stores and decides. Without
``fork`` the same generator runs in-process (and the replay assesses the posts itself).

A line whose time the first pass cannot read is bad (the parse needs that time too); it is
parsed last, only for its reason. Bad lines end up in ``stats.bad`` in file and line order,
as ``read_feeds`` records them; ``stats`` is complete once the last chunk is taken.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import queue
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import msgspec

from monitor import workers
from monitor.feed import BadLine, FeedStats, feed_line_list, parse_line
from monitor.normalise import BadInput, parse_time, simplify_posts
from monitor.store import PlainPost, encode_events, event_key, post_key
from rules.records import Action, Event, Post
from rules.scoring import Assessment

CHUNK = 2048
"""Events per chunk: a multiple of the replay's prepare batch, so its batches fall exactly
where they fall on a list of all events."""


Assessor = Callable[[Sequence[Post]], dict[str, Assessment]]
"""Brand matches and scores of the posts that mention a brand, by post id. One with a
``decide(posts, assessed) -> dict[str, bytes]`` method (``monitor.app.ReaderWork``) also
decides ahead what needs no engine (``monitor.pipeline.early_decisions``)."""
Assessed = list[dict[str, Assessment]]
"""A chunk's assessments, one mapping per batch of ``batch`` events (less the posts a
decision was made for ahead, when there are ``Decided``: the decision holds the same)."""
Decided = list[dict[str, bytes]]
"""A chunk's decisions made ahead, encoded, by post id, one mapping per batch."""


class _Timed(msgspec.Struct):
    created_at: Any = None


_time_decoder = msgspec.json.Decoder(_Timed)
_CHUNK_TYPE = tuple[list[Post | PlainPost], list[tuple[int, Action]], Assessed | None,
                    Decided | None, dict[str, bytes]]
_encoder = msgspec.msgpack.Encoder()
_chunk_decoder = msgspec.msgpack.Decoder(_CHUNK_TYPE)
_rows_decoder = msgspec.msgpack.Decoder(list[bytes])
_TAG_CHUNK = b"C"
_ROWS_PER_MESSAGE = 8192
"""Sorted lines sent to the reader a message at a time (``FeedReader._send_lines``): the
replay's process never holds a second copy of a whole feed."""
_TAG_END = b"E"  # then a pickle: (the FeedStats, or the exception that ended the reading;
# the reader's CPU seconds)


def _line_time(line: bytes) -> float | None:
    """``created_at`` of a line as ``to_event`` would read it; None if it has none."""
    try:
        value = _time_decoder.decode(line).created_at
        return None if value is None else parse_time(value)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, BadInput):
        return None


@dataclass(slots=True)
class SortedLines:
    """The first pass over the feeds: their lines in the order their events are replayed
    (``sort_lines``)."""

    lines: int
    """Non-blank lines read (``FeedStats.lines``)."""
    unreadable: list[tuple[int, BadLine]]
    """The unreadable (truncated or corrupt gzip) rest of a file, as ``feed_lines``
    reports it, with the file's index."""
    rows: list[bytes]
    """Every line: the ``timed`` ones by time, then file, then line (``read_feeds``'
    order), then those without a readable time in file and line order."""
    where: array[int]
    """File index and line number of each row, two entries a row."""
    times: array[float]
    """``created_at`` of each timed row."""

    @property
    def timed(self) -> int:
        return len(self.times)


def sort_lines(paths: Sequence[Path]) -> SortedLines:
    """Read every line of ``paths`` and only its ``created_at`` (a typed decode that skips
    the rest of the line: ~0.5 µs a line), and order the lines as ``read_feeds`` orders
    the events: by time, then file, then line."""
    rows: list[bytes] = []
    files: list[int] = []  # each row's file index and line number
    numbers: list[int] = []
    unreadable: list[tuple[int, BadLine]] = []
    lines = 0
    for fi, path in enumerate(paths):
        read = FeedStats()  # this file's lines, and its unreadable rest if any
        linenos, found = feed_line_list(path, read)
        lines += read.lines
        unreadable.extend((fi, b) for b in read.bad)
        rows += found
        numbers += linenos
        files += [fi] * len(found)
    times = list(map(_line_time, rows))
    timed = [i for i, t in enumerate(times) if t is not None]
    # Rows are in file and line order: a stable sort by time is read_feeds' sort + merge
    # (by time, then file, then line), without a tuple a row.
    stamps = cast("list[float]", times)  # (read at the timed rows only)
    timed.sort(key=stamps.__getitem__)
    order = timed + [i for i, t in enumerate(times) if t is None]
    where = array("q", [0]) * (2 * len(order))
    where[0::2] = array("q", [files[i] for i in order])
    where[1::2] = array("q", [numbers[i] for i in order])
    return SortedLines(lines, unreadable, [rows[i] for i in order], where,
                       array("d", [stamps[i] for i in timed]))


def ordered_chunks(paths: Sequence[Path], stats: FeedStats, chunk: int = CHUNK,
                   on_sorted: Callable[[int], None] | None = None,
                   lines: SortedLines | None = None,
                   first: int | None = None) -> Iterator[list[Event]]:
    """The events of ``paths`` in ``read_feeds`` order, ``chunk`` at a time (``first``
    events in the first chunk, if given).

    ``on_sorted(n)`` is told, before the first chunk, how many lines have a time: the
    events to come, but for lines that turn out bad. ``lines``: ``sort_lines(paths)``,
    if made already (by the replay's process, while the reader loads the models).
    """
    if lines is None:
        lines = sort_lines(paths)
    stats.lines += lines.lines
    bad = [(fi, b.line, b) for fi, b in lines.unreadable]  # (file, line, why): sorted at
    # the end
    if on_sorted is not None:
        on_sorted(lines.timed)
    rows, where, times = lines.rows, lines.where, lines.times
    names = [str(p) for p in paths]
    sources = [p.name for p in paths]

    def parse(i: int) -> Event | BadLine:  # a row without a time (the timed: below)
        fi, lineno = where[2 * i], where[2 * i + 1]
        parsed = parse_line(rows[i], names[fi], lineno, f"{sources[fi]}:{lineno}")
        if isinstance(parsed, BadLine):
            bad.append((fi, lineno, parsed))
        return parsed

    out: list[Event] = []
    size = first or chunk
    # The timed rows with their files and line numbers side by side, not each read out
    # of ``where`` by index (~0.3 µs a line). Each parsed with the time the first pass
    # read (not read again: ~1.5 µs a line in a forked reader, whose cache of times read
    # is empty), and not simplified: for the chunk at once (``simplify_posts``).
    # (``times``: of the timed rows only, which come first)
    for t, row, fi, lineno in zip(times, rows, where[0::2], where[1::2], strict=False):
        parsed = parse_line(row, names[fi], lineno, f"{sources[fi]}:{lineno}", False, t)
        if isinstance(parsed, BadLine):
            bad.append((fi, lineno, parsed))
            continue
        if parsed.created_at != t:  # cannot happen: both read the same value
            raise RuntimeError(f"{names[fi]}:{lineno}: time read twice differently")
        out.append(parsed)
        if len(out) == size:
            stats.events += size
            simplify_posts(out)
            yield out
            out = []
            size = chunk
    for i in range(lines.timed, len(rows)):
        if not isinstance(parse(i), BadLine):  # cannot happen: no time, no event
            raise RuntimeError(f"{names[where[2 * i]]}:{where[2 * i + 1]}: an event "
                               "without a readable time")
    bad.sort(key=lambda b: (b[0], b[1]))
    stats.bad.extend(b for _fi, _line, b in bad)
    if out:
        stats.events += len(out)
        simplify_posts(out)
        yield out


@dataclass(slots=True)
class Chunk:
    """Events in time order, and what a forked reader worked out for them."""

    events: list[Event | PlainPost]
    """(``PlainPost``: a post the reader found plain, see ``plain_marked``)"""
    assessed: Assessed | None = None
    """Brand matches and scores, per batch (see ``FeedReader``); with ``decided``, only
    of the posts not decided whole there."""
    decided: Decided | None = None
    """Decisions made ahead, per batch (see ``Pipeline.prepare``)."""
    bodies: dict[str, bytes] | None = None
    """Each event as the store keeps it, by event key (``Store.encoded``)."""


class FeedReader:
    """Iterate over the events of ``paths`` in time order, a chunk at a time, read ahead
    by a forked process where there is one. ``stats`` is complete after the last chunk.

    A forked reader also encodes each event for the store (``Chunk.bodies``: ~3 µs an
    event that the replay's process is spared) and, given ``assessor`` (a function that
    builds the assessor there), assesses every ``batch`` events of each chunk
    (``Chunk.assessed``), so the models are loaded in that process only.
    """

    def __init__(self, paths: Sequence[Path], stats: FeedStats, chunk: int = CHUNK,
                 fork: bool = True, assessor: Callable[[], Assessor] | None = None,
                 batch: int = 256) -> None:
        if chunk % batch:
            raise ValueError(f"chunk {chunk} is not a multiple of batch {batch}")
        self.paths = list(paths)
        self.stats = stats
        self.chunk = chunk
        self.expected: int | None = None
        """Events to come (lines with a time), once the reader has sorted the lines."""
        self.cpu_seconds: float | None = None
        """CPU seconds the forked reader used (read, parse, match, score, encode), once it
        is done; None in-process (its work is then the caller's)."""
        self._proc: Any = None
        self._conn: Any = None
        self._sending: threading.Thread | None = None
        """Sorts the lines and sends them to a forked reader (``_send_lines``)."""
        self._sort_failed: BaseException | None = None
        if not fork:
            return
        # The first pass (``sort_lines``) is made here, in the replay's process, which
        # has little else to do until the first chunk, while the reader loads the models
        # (~0.2 s each on a 100,000-line day, which the reader did one after the other).
        # In a thread, from now on: the replay's own setup (its store's writer, the
        # pipeline) is mostly waiting, and the sending waits for the reader to take the
        # lines once its models are loaded.
        lines_in, lines_out = workers.one_way_pipe()
        started = workers.start(_read_process, self.paths, chunk, assessor, batch, lines_in,
                                name="crisismon-feed", duplex=False)
        lines_in.close()
        if started is None:
            lines_out.close()
            return
        self._proc, self._conn = started
        self._sending = threading.Thread(target=self._send_lines, args=(lines_out,),
                                         name="feed-sort", daemon=True)
        self._sending.start()

    def __iter__(self) -> Iterator[Chunk]:
        if self._conn is None:
            for ordered in ordered_chunks(self.paths, self.stats, self.chunk, self._sorted):
                yield Chunk(cast("list[Event | PlainPost]", ordered))
            return
        conn = self._conn
        if self._sending is not None:
            self._sending.join()
            self._sending = None
            if self._sort_failed is not None:
                raise self._sort_failed
        while True:
            try:
                msg = workers.read_frame(conn.fileno())
            except EOFError:
                raise RuntimeError("the feed reader process ended early (exit code "
                                   f"{self._proc.exitcode})") from None
            if msg[:1] == _TAG_CHUNK:
                posts, actions, assessed, decided, bodies = _chunk_decoder.decode(
                    memoryview(msg)[1:])
                events: list[Event | PlainPost] = posts  # type: ignore[assignment]
                if actions:
                    events = list(posts)
                    for at, action in actions:
                        events.insert(at, action)
                yield Chunk(events, assessed, decided, bodies)
                continue
            ended, self.cpu_seconds = pickle.loads(msg[1:])
            if isinstance(ended, BaseException):
                raise ended
            self.stats.lines, self.stats.events = ended.lines, ended.events
            self.stats.bad[:] = ended.bad
            return

    def _sorted(self, n: int) -> None:
        self.expected = n

    def _send_lines(self, conn: Any) -> None:
        """Sort the lines here and send them down ``conn`` to the forked reader (see
        ``__init__``); an error reading the feeds is kept for ``__iter__`` to raise (the
        reader ends on the closed pipe)."""
        try:
            lines = sort_lines(self.paths)
            self._sorted(lines.timed)
            fd = conn.fileno()
            workers.write_frame(fd, _encoder.encode((
                lines.lines, [(fi, b.file, b.line, b.reason) for fi, b in lines.unreadable],
                lines.where.tobytes(), lines.times.tobytes(), len(lines.rows))))
            rows = lines.rows
            for i in range(0, len(rows), _ROWS_PER_MESSAGE):
                workers.write_frame(fd, _encoder.encode(rows[i:i + _ROWS_PER_MESSAGE]))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader is gone: what ended it is read from its pipe next
        except BaseException as exc:
            self._sort_failed = exc
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the reader (it ends on the closed pipe) and reap it."""
        if self._proc is None:
            return
        self._conn.close()
        if self._sending is not None and self._sending.is_alive():
            # Never iterated, and the lines not yet taken: the reader's work is not wanted,
            # and the sending ends on the reader's end of its pipe closing.
            self._proc.terminate()
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
        self._proc = None
        if self._sending is not None:
            self._sending.join()
            self._sending = None


class _Sender:
    """Sends the reader's messages from a thread, so the reader reads on while the replay
    is busy with a chunk (a pipe holds 64 KB; a chunk is ~800 KB), up to ``ahead``
    messages ahead of it. Framed (``workers.write_frame``), as the sorted lines coming the
    other way: each is read straight into one buffer of its size, where
    ``Connection.recv_bytes`` allocated one for the whole rest at each read of the pipe
    and copied the pieces together (the heavy day's chunks are ~75 MB, its lines ~40 MB)."""

    def __init__(self, conn: Any, ahead: int = 16) -> None:
        self._conn = conn
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=ahead)
        self._failed: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="feed-sender", daemon=True)
        self._thread.start()

    def send(self, msg: bytes) -> None:
        """Queue ``msg``; raises the error that stopped the sending (the replay is gone)."""
        if self._failed is not None:
            raise self._failed
        self._queue.put(msg)

    def close(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (msg := self._queue.get()) is not None:
            if self._failed is not None:
                continue  # drained, so that ``send`` never blocks on a full queue
            try:
                workers.write_frame(self._conn.fileno(), msg)
            except OSError as exc:  # BrokenPipeError: the replay stopped reading
                self._failed = exc


def plain_marked(batches: list[list[Post]], assessed: Assessed, decided: Decided
                 ) -> list[Post | PlainPost]:
    """The posts of ``batches`` (a chunk's, in order), each plain one as a ``PlainPost``:
    in no batch's ``decided`` nor ``assessed`` (it names no brand, no official account
    wrote it), answering no post, and the first of its id in the chunk (whose body the
    chunk carries). The replay's ``Pipeline.handle`` only stores such a post (see there)."""
    first: set[str] = set()
    out: list[Post | PlainPost] = []
    for batch, assessed_b, decided_b in zip(batches, assessed, decided, strict=True):
        for post in batch:
            pid = post.id
            if pid not in first:
                first.add(pid)
                if not (post.reposts_id or post.on_status_id or post.reply_to_id
                        or pid in decided_b or pid in assessed_b):
                    out.append(_new_plain(PlainPost, (pid, post.created_at)))
                    continue
            out.append(post)
    return out


_new_plain = tuple.__new__
"""Makes a ``PlainPost`` without its generated ``__new__`` (a Python function: ~3x the
cost, for two thirds of a mention-heavy day's posts)."""


def _bodies(events: list[Event]) -> dict[str, bytes]:
    """Each event as the store keeps it (``encode_event``), by event key: the first
    event of a key, the one the store may keep."""
    keys = [post_key(e.id) if type(e) is Post else event_key(e) for e in events]
    encoded = encode_events(events)
    bodies = dict(zip(keys, encoded, strict=True))
    if len(bodies) < len(keys):  # a key repeated (rare): its last body was kept, and
        # its place is its first's; assigned back to front, the first's body is kept
        for key, body in zip(reversed(keys), reversed(encoded), strict=True):
            bodies[key] = body
    return bodies


def _chunk_message(events: list[Event], assess: Assessor | None, batch: int) -> bytes:
    """A chunk's message to the replay's process (``_TAG_CHUNK``, then msgpack): its posts
    (with ``assess.decide``: the plain ones as ``PlainPost``), its actions with their
    places, what ``assess`` made of each ``batch`` events (``Chunk``), and the bodies."""
    posts = [e for e in events if type(e) is Post]
    actions = ([(i, e) for i, e in enumerate(events) if isinstance(e, Action)]
               if len(posts) < len(events) else [])
    assessed: Assessed | None = None
    decided: Decided | None = None
    sent: list[Post | PlainPost] = posts  # type: ignore[assignment]
    if assess is not None:
        batches = ([[e for e in events[j:j + batch] if type(e) is Post]
                    for j in range(0, len(events), batch)] if actions else
                   [posts[j:j + batch] for j in range(0, len(posts), batch)])
        assessed = [assess(b) for b in batches]
        decide = getattr(assess, "decide", None)
        if decide is not None:  # the replay's process is spared deciding these
            decided = [decide(b, a) for b, a in zip(batches, assessed, strict=True)]
            # A post decided whole needs its assessment no more (``Pipeline`` decodes
            # the decision instead): not sent, nor decoded there (a third of the posts
            # on a mention-heavy day).
            assessed = [{pid: a for pid, a in ab.items() if not db.get(pid)}
                        for ab, db in zip(assessed, decided, strict=True)]
            sent = plain_marked(batches, assessed, decided)
    return _TAG_CHUNK + _encoder.encode((sent, actions, assessed, decided, _bodies(events)))


def _receive_lines(conn: Any) -> SortedLines:
    """The sorted lines, as ``FeedReader._send_lines`` sends them; EOFError if the replay's
    process could not read the feeds (it raises the error itself)."""
    fd = conn.fileno()
    lines, unreadable, where, times, n = msgspec.msgpack.decode(workers.read_frame(fd))
    rows: list[bytes] = []
    while len(rows) < n:
        rows += _rows_decoder.decode(workers.read_frame(fd))
    return SortedLines(lines, [(fi, BadLine(name, line, reason))
                               for fi, name, line, reason in unreadable],
                       rows, array("q", where), array("d", times))


def _read_process(conn: Any, paths: list[Path], chunk: int,
                  assessor: Callable[[], Assessor] | None, batch: int,
                  lines_conn: Any) -> None:
    """The forked reader: every chunk, then the stats (or the error that stopped it)."""
    # A short-lived process that keeps every line it reads to its end, and makes no
    # garbage cycles: the cycle collector would only walk the lines again and again.
    gc.disable()
    stats = FeedStats()
    sender = _Sender(conn)
    try:
        # The models first (~0.35 s: rjieba, the sentiment model, the lexicons), so every
        # chunk goes out scored and the replay's process never loads them: sending the
        # first chunks unscored had both processes load them, and the replay still
        # waited for the reader while it loaded them later.
        assess = assessor() if assessor is not None else None
        warm_up = getattr(assess, "warm_up", None)
        if warm_up is not None:  # while the replay's process sorts the lines
            warm_up()

        try:
            lines = _receive_lines(lines_conn)
        except EOFError:  # the replay's process failed to read the feeds, and says so
            sender.close()
            return
        finally:
            lines_conn.close()
        # The first chunk one batch long: the replay waits for it with nothing else to
        # do, and a whole chunk took ~0.1 s more to parse and score (the chunks after it
        # arrive while the replay handles those before).
        for events in ordered_chunks(paths, stats, chunk, lines=lines, first=batch):
            sender.send(_chunk_message(events, assess, batch))
        ended: object = stats
    except OSError as exc:
        if isinstance(exc, BrokenPipeError | ConnectionResetError):
            sender.close()
            return  # the replay stopped reading (it failed, or was interrupted)
        ended = exc
    except Exception as exc:  # handed to the replay, which raises it
        ended = exc
    cpu = time.process_time()  # this process's own: a forked child starts at zero
    try:
        end = pickle.dumps((ended, cpu))
    except Exception:  # an exception that does not pickle
        end = pickle.dumps((RuntimeError(f"feed reader: {ended!r}"), cpu))
    with contextlib.suppress(OSError):  # the replay is gone: no one to tell
        sender.send(_TAG_END + end)
    sender.close()
