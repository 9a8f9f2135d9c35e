"""``crisismon score``: JSON lines in, one JSON line out per input line, in order.

Each line is decoded with msgspec, its text normalised, the texts of a chunk scored together
(the sentiment model works in batches) and each result encoded with msgspec. A blank line is
scored as an empty text; an unreadable line gives ``{"error":"invalid input line"}`` in its
place and a message on stderr.

On a large input the second core helps: once a first full chunk has been read, a forked copy
of this process (``monitor.workers``: model and dictionary already in memory, no start-up
cost) scores every other chunk while this one scores the rest; the results are written in
input order. Where ``fork`` is unavailable every chunk is scored here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

from monitor.normalise import BadInput, normalise_text
from rules.matching import BrandMatcher
from rules.scoring import Scorer

CHUNK = 2000
"""Input lines scored together (and handed to the worker at a time)."""

INVALID = b'{"error":"invalid input line"}'


class ScoreLine(msgspec.Struct, gc=False):
    """One output line of ``crisismon score``."""

    sentiment: float
    negative: bool
    polarity: str
    p_negative: float
    brands: list[str]
    severity: str
    terms: list[str]


class LineScorer:
    """Scores chunks of raw input lines into output bytes (one line per input line)."""

    def __init__(self, scorer: Scorer, matcher: BrandMatcher) -> None:
        self.scorer = scorer
        self.matcher = matcher
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode

    def texts(self, texts: list[str | None]) -> bytes:
        """Output lines (each ending in a newline) for normalised texts; ``None`` marks an
        unreadable input line."""
        scorer, match, encode = self.scorer, self.matcher.match, self._encode
        polarities = iter(scorer.score_many([t for t in texts if t is not None]))
        lines = []
        for t in texts:
            if t is None:
                lines.append(INVALID)
                continue
            # ``t`` went through normalise_text: already simplified, no control characters.
            s = scorer.score_text(t, next(polarities), simplified=True)
            lines.append(encode(ScoreLine(s.sentiment, s.negative, s.polarity, s.p_negative,
                                          [m.brand for m in match(t)], s.severity,
                                          list(s.terms))))
        lines.append(b"")
        return b"\n".join(lines)

    def lines(self, raw: list[bytes], first_lineno: int) -> tuple[bytes, list[str]]:
        """Output for raw JSON lines numbered from ``first_lineno``, and a message per
        unreadable line."""
        texts: list[str | None] = []
        errors: list[str] = []
        for lineno, line in enumerate(raw, first_lineno):
            if not line.strip():
                texts.append("")  # one output line per input line: scored as an empty text
                continue
            try:
                obj = self._decode(line)
                text = obj.get("text") if isinstance(obj, dict) else None
                if not isinstance(text, str):
                    raise BadInput('needs a "text" string field')
                texts.append(normalise_text(text))
            except (msgspec.DecodeError, BadInput) as exc:
                errors.append(f"stdin:{lineno}: skipped: {exc}")
                texts.append(None)
        return self.texts(texts), errors


def _chunks(stream: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    first = 1
    for lineno, line in enumerate(stream, 1):
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield first, chunk
            chunk, first = [], lineno + 1
    if chunk:
        yield first, chunk


def _worker(conn: Any, scorer: LineScorer) -> None:
    """The forked helper: score each chunk it is sent until the pipe closes."""
    while True:
        try:
            first, raw = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(scorer.lines(raw, first))


def score_stream(scorer: LineScorer, stream: Iterable[bytes], out: IO[bytes],
                 err: IO[str], *, fork: bool = True) -> int:
    """Score every line of ``stream`` onto ``out``; messages for bad lines on ``err``.
    Returns how many lines were unreadable."""
    bad = 0

    def emit(result: tuple[bytes, list[str]]) -> None:
        nonlocal bad
        data, errors = result
        for message in errors:
            print(message, file=err)
        bad += len(errors)
        out.write(data)
        out.flush()

    helper: tuple[Any, Any] | None = None  # (process, pipe)
    tried = False  # a helper is started once at most: none, and this process scores all
    in_flight = False
    try:
        for first, raw in _chunks(stream):
            if not tried and fork and len(raw) >= CHUNK:
                from monitor import workers

                tried = True
                helper = workers.start(_worker, scorer, name="crisismon-score")
            if helper is not None and not in_flight:
                helper[1].send((first, raw))  # the helper scores this one ...
                in_flight = True
                continue
            mine = scorer.lines(raw, first)  # ... while this process scores the next
            if helper is not None and in_flight:
                emit(helper[1].recv())
                in_flight = False
            emit(mine)
        if helper is not None and in_flight:
            emit(helper[1].recv())
    finally:
        if helper is not None:
            helper[1].close()
            helper[0].join(timeout=5)
    return bad
