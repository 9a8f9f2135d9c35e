"""One mention record for every output that shows a mention (issue 19: one serialiser).

``MentionRecord`` is a mention with its reply clock, as the outputs see it. It is made in
two ways and written in two:

- ``from_clock``: from the engine's ``ReplyClock``, every field set;
- ``from_row``: from a stored row read back (``SHOWN_MENTION_COLUMNS``: the dashboard,
  the digests);
- ``to_row`` / ``stored_rows``: the ``mentions`` projection's row (``MENTION_COLUMNS``),
  which the pipeline writes once per batch (``Pipeline._flush_projections``, straight
  from each changed clock: ``stored_rows`` takes a record or a clock alike);
- ``to_dict`` / ``to_json`` (``mention_dict``, ``mention_json``): the ``mentions.jsonl``
  record and line; the analyst report reads its ``MENTION_FIELDS`` (the replay's and the
  digests' plots alike).

``stored_rows`` and ``mention_dict`` read a ``MentionFields``: a record, or the engine's
``ReplyClock`` itself, whose attribute names the record's fields share. The replay's
paths (the rows written every batch, ``mentions.jsonl`` at the end) pass the clocks
straight in and make no record: the same serialiser, without an object per mention.

The store keeps fewer fields than the JSON line: a record read back from a row has None
for ``kind``, ``author_id``, ``keywords``, ``polarity``, ``p_negative`` and ``terms`` (and
for ``seen_at``, which no reader shows), and its ``author_name`` is the shown name (the
screen name, else the author id: ``shown_author``).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from rules.records import format_instant

if TYPE_CHECKING:
    from rules.engine import ReplyClock

MENTION_FIELDS = ("id", "brand", "created_at", "sentiment", "negative", "needs_reply",
                  "reply_seconds")
"""The fields of a ``mentions.jsonl`` record that the report and its plots read: all the
replay hands its report process (a summary of records holding only these is the same)."""

_dumps: Callable[[dict[str, Any]], str] = json.JSONEncoder(ensure_ascii=False).encode
"""``json.dumps(rec, ensure_ascii=False)`` without building an encoder per call."""
_encode = msgspec.json.Encoder().encode
_PLAIN_FLOAT = (1e-4, 1e15)
"""Floats whose JSON msgspec writes as ``repr`` does (``0.0001``, ``123.5``): outside
this range it writes ``1e16`` and ``0.00001`` where ``json`` writes ``1e+16`` and
``1e-05``, and it writes no ``NaN``."""


def mention_json_bytes(rec: dict[str, Any]) -> bytes:
    """A ``MentionRecord.to_dict`` record's ``mentions.jsonl`` line (no newline), UTF-8:
    the text ``json.dumps(rec, ensure_ascii=False)`` gives, the file's since the start.

    Made by msgspec and spaced by its ``format(indent=0)`` (``", "`` and ``": "``, as
    ``json`` separates), ~3x faster (the mention-heavy day writes 33,666 lines): the same
    text for the strings (the escapes are ``json``'s, see ``rules.records.record_json``),
    numbers and literals a record holds, checked line for line on the benchmark days
    (``tests/unit/test_mention_record.py`` checks the edges). A float msgspec would write
    otherwise (``_PLAIN_FLOAT``), or anything it refuses, goes through ``json``."""
    line = _fast_line(rec)
    return _dumps(rec).encode() if line is None else line


def mention_json(rec: dict[str, Any]) -> str:
    """``mention_json_bytes`` as text: ``json.dumps(rec, ensure_ascii=False)`` (which
    also writes a lone surrogate, as the UTF-8 line cannot)."""
    line = _fast_line(rec)
    return _dumps(rec) if line is None else line.decode()


def _fast_line(rec: dict[str, Any]) -> bytes | None:
    """``mention_json_bytes`` by msgspec, or None where its text could differ."""
    low, high = _PLAIN_FLOAT
    for value in rec.values():
        if type(value) is float and value and not low <= abs(value) < high:
            return None
    try:
        return msgspec.json.format(_encode(rec), indent=0)
    except (msgspec.EncodeError, UnicodeEncodeError, OverflowError):
        return None


def _reasons_json(t: tuple[str, ...]) -> str:
    return json.dumps(t, ensure_ascii=False)


class MentionRecord(msgspec.Struct, gc=False):
    """A mention and its reply clock, as ``mentions.jsonl``, the store, the dashboard and
    the digests show it (field order: that of a ``mentions.jsonl`` line)."""

    key: str
    """``Mention.key``: brand and post id (the store's primary key; not in the JSON)."""
    post_id: str
    """The post's id (``id`` in the JSON)."""
    brand: str
    kind: str | None
    created_at: float
    seen_at: float | None
    author_id: str | None
    author_name: str | None
    """The screen name (``author`` in the JSON; from a stored row: the shown name, see
    ``shown_author``)."""
    followers: int
    text: str
    keywords: tuple[str, ...] | None
    sentiment: float
    negative: bool
    polarity: str | None
    p_negative: float | None
    severity: str
    terms: tuple[str, ...] | None
    reasons: tuple[str, ...]
    needs_reply: bool
    replied_at: float | None
    replied_by: str | None
    acked_by: str | None
    private_resolve_at: float | None
    incident_id: str | None

    @classmethod
    def from_clock(cls, clock: ReplyClock) -> MentionRecord:
        """The mention of an engine's reply clock, every field set."""
        # Positional: keywords cost about as much again as the record's own work.
        return cls(
            clock.key, clock.post_id, clock.brand, str(clock.kind), clock.created_at,
            clock.seen_at, clock.author_id, clock.author_name, clock.followers, clock.text,
            clock.keywords, clock.sentiment, clock.negative, clock.polarity, clock.p_negative,
            clock.severity, clock.terms, clock.reasons, clock.needs_reply, clock.replied_at,
            clock.replied_by, clock.acked_by, clock.private_resolve_at, clock.incident_id)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MentionRecord:
        """A stored row read back, values in ``SHOWN_MENTION_COLUMNS`` order (what
        ``Store.mention_rows`` and ``Store.mentions_between`` return)."""
        (key, brand, post_id, created, author, followers, text, sentiment, negative,
         severity, reasons, needs_reply, replied_at, replied_by, acked_by, private_at,
         incident_id) = row
        return cls(
            key=key, post_id=str(post_id), brand=brand, kind=None, created_at=float(created),
            seen_at=None, author_id=None, author_name=author, followers=int(followers),
            text=text, keywords=None, sentiment=float(sentiment), negative=bool(negative),
            polarity=None, p_negative=None, severity=severity, terms=None,
            reasons=tuple(json.loads(reasons)),
            needs_reply=bool(needs_reply),
            replied_at=None if replied_at is None else float(replied_at),
            replied_by=replied_by, acked_by=acked_by,
            private_resolve_at=None if private_at is None else float(private_at),
            incident_id=incident_id)

    @property
    def shown_author(self) -> str:
        """The name shown for the author: the screen name, else the author id."""
        return self.author_name or self.author_id or ""

    def reply_seconds(self, until: float = math.inf) -> float | None:
        """Seconds from the post to the official reply; None if there is none before
        ``until`` (a digest counts only the replies made before its period ended)."""
        replied = self.replied_at
        return None if replied is None or replied >= until else replied - self.created_at

    def to_row(self, reasons_json: Callable[[tuple[str, ...]], str] = _reasons_json
               ) -> tuple[object, ...]:
        """The ``mentions`` projection's row (``stored_rows``)."""
        return stored_rows((self,), reasons_json)[0]

    def to_dict(self, tz: tzinfo, until: float = math.inf) -> dict[str, Any]:
        """The ``mentions.jsonl`` record (``mention_dict``)."""
        return mention_dict(self, tz, until)

    def to_json(self, tz: tzinfo) -> str:
        """The ``mentions.jsonl`` line (no newline): ``json.dumps(to_dict(tz),
        ensure_ascii=False)``."""
        return mention_json(self.to_dict(tz))


class MentionFields(Protocol):
    """A mention's fields, as the serialisers read them: a ``MentionRecord``, or the
    engine's ``ReplyClock`` itself (whose attributes the record's fields are named after:
    on the replay's paths the rows and lines are built from the clocks, no record made)."""

    @property
    def key(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def post_id(self) -> str: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def seen_at(self) -> float | None: ...
    @property
    def author_name(self) -> str | None: ...
    @property
    def author_id(self) -> str | None: ...
    @property
    def followers(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def keywords(self) -> tuple[str, ...] | None: ...
    @property
    def sentiment(self) -> float: ...
    @property
    def negative(self) -> bool: ...
    @property
    def polarity(self) -> str | None: ...
    @property
    def p_negative(self) -> float | None: ...
    @property
    def severity(self) -> str: ...
    @property
    def terms(self) -> tuple[str, ...] | None: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def needs_reply(self) -> bool: ...
    @property
    def replied_at(self) -> float | None: ...
    @property
    def replied_by(self) -> str | None: ...
    @property
    def acked_by(self) -> str | None: ...
    @property
    def private_resolve_at(self) -> float | None: ...
    @property
    def incident_id(self) -> str | None: ...


def stored_rows(mentions: Iterable[MentionFields],
                reasons_json: Callable[[tuple[str, ...]], str] = _reasons_json
                ) -> list[tuple[object, ...]]:
    """The ``mentions`` projection's rows of ``mentions``, values in ``MENTION_COLUMNS``
    order (``MentionRecord.from_row`` reads one back).

    Built straight from each ``ReplyClock`` on the replay's hot path
    (``Pipeline._flush_projections``, every batch): going through a ``MentionRecord``
    there cost 3x the time of the rows alone. ``reasons_json``: the JSON text of a reasons
    tuple (the pipeline passes a cache: the engine shares one copy of each distinct
    tuple, and there are few). A record read back from a row has no ``seen_at``: it is
    not written back."""
    return [(m.key, m.brand, m.post_id, m.created_at, m.seen_at, m.author_name or m.author_id,
             m.followers, m.text, m.sentiment, int(m.negative), m.severity,
             reasons_json(m.reasons), int(m.needs_reply), m.replied_at, m.replied_by,
             m.acked_by, m.private_resolve_at, m.incident_id) for m in mentions]


def mention_dict(m: MentionFields, tz: tzinfo, until: float = math.inf) -> dict[str, Any]:
    """The ``mentions.jsonl`` record of ``m`` (a ``MentionRecord``, or straight from the
    engine's ``ReplyClock`` in the replay, as ``stored_rows``), times in ``tz``.
    ``until``: a reply made at or after it is left out (``replied_at``, ``reply_seconds``:
    a digest's period end). Lists are tuples here: the JSON text is the same."""
    replied = m.replied_at
    if replied is not None and replied >= until:
        replied = None
    private = m.private_resolve_at
    return {
        "id": m.post_id, "brand": m.brand, "kind": m.kind and str(m.kind),
        "created_at": format_instant(m.created_at, tz),
        "author_id": m.author_id, "author": m.author_name,
        "followers": m.followers, "text": m.text,
        "keywords": m.keywords,
        "sentiment": m.sentiment, "negative": m.negative,
        "polarity": m.polarity, "p_negative": m.p_negative,
        "severity": m.severity,
        "terms": m.terms,
        "reasons": m.reasons, "needs_reply": m.needs_reply,
        "replied_at": None if replied is None else format_instant(replied, tz),
        "reply_seconds": None if replied is None else replied - m.created_at,
        "replied_by": m.replied_by,
        "acked_by": m.acked_by,
        "private_resolve_at": None if private is None else format_instant(private, tz),
        "incident_id": m.incident_id,
    }


class _Line(msgspec.Struct, gc=False):
    """A ``mention_dict`` record as a struct, fields in its key order: msgspec encodes it
    as the same JSON object as the dict (``mention_line``), without a dict per mention."""

    id: Any
    brand: Any
    kind: Any
    created_at: Any
    author_id: Any
    author: Any
    followers: Any
    text: Any
    keywords: Any
    sentiment: Any
    negative: Any
    polarity: Any
    p_negative: Any
    severity: Any
    terms: Any
    reasons: Any
    needs_reply: Any
    replied_at: Any
    reply_seconds: Any
    replied_by: Any
    acked_by: Any
    private_resolve_at: Any
    incident_id: Any


def _plain(x: object) -> bool:
    """Whether msgspec writes ``x`` as ``json`` does, where ``x`` may be a float (see
    ``_PLAIN_FLOAT``)."""
    return type(x) is not float or not x or _PLAIN_FLOAT[0] <= abs(x) < _PLAIN_FLOAT[1]


def mention_fields(m: MentionFields, tz: tzinfo) -> tuple[Any, ...]:
    """``report_fields(mention_dict(m, tz))``, without the record: what the replay hands
    its report process of each mention (first, so that the report starts early)."""
    created = m.created_at
    replied = m.replied_at
    return (m.post_id, m.brand, format_instant(created, tz), m.sentiment, m.negative,
            m.needs_reply, None if replied is None else replied - created)


def mention_line(m: MentionFields, tz: tzinfo,
                 fields: tuple[Any, ...] | None = None) -> bytes:
    """``mention_json_bytes(mention_dict(m, tz))``, made without the record (the replay
    writes one line per mention at its end: the dict and a pass over its values for
    floats were ~half of that). ``fields``: ``mention_fields(m, tz)``, if made already."""
    if fields is None:
        fields = mention_fields(m, tz)
    post_id, brand, created_s, sentiment, negative, needs_reply, seconds = fields
    p_negative, followers = m.p_negative, m.followers
    if _plain(sentiment) and _plain(p_negative) and _plain(seconds) and _plain(followers):
        replied = m.replied_at
        private = m.private_resolve_at
        kind = m.kind
        try:
            return msgspec.json.format(_encode(_Line(
                post_id, brand, kind and str(kind), created_s, m.author_id,
                m.author_name, followers, m.text, m.keywords, sentiment, negative,
                m.polarity, p_negative, m.severity, m.terms, m.reasons, needs_reply,
                None if replied is None else format_instant(replied, tz), seconds,
                m.replied_by, m.acked_by,
                None if private is None else format_instant(private, tz), m.incident_id)),
                indent=0)
        except (msgspec.EncodeError, UnicodeEncodeError, OverflowError):
            pass
    return mention_json_bytes(mention_dict(m, tz))


report_fields: Callable[[dict[str, Any]], tuple[object, ...]] = operator.itemgetter(
    *MENTION_FIELDS)
"""A ``to_dict`` record's values of ``MENTION_FIELDS``, in that order (what the replay
hands its report process)."""


def report_record(values: Sequence[object]) -> dict[str, Any]:
    """The report's mention record from ``report_fields`` values."""
    return dict(zip(MENTION_FIELDS, values, strict=True))
