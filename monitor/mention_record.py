"""One mention record for every output that shows a mention (issue 19: one serialiser).

``MentionRecord`` is a mention with its reply clock, as the outputs see it. It is made in
two ways and written in two:

- ``from_clock``: from the engine's ``ReplyClock`` (the replay's ``mentions.jsonl``, the
  store's ``mentions`` row);
- ``from_row``: from a stored row read back (``SHOWN_MENTION_COLUMNS``: the dashboard,
  the digests);
- ``to_row`` / ``stored_rows``: the ``mentions`` projection's row (``MENTION_COLUMNS``),
  which the pipeline writes once per batch (``Pipeline._flush_projections``, straight
  from each changed clock: ``stored_rows`` takes a record or a clock alike);
- ``to_dict`` / ``to_json``: the ``mentions.jsonl`` record and line; the analyst report
  reads its ``MENTION_FIELDS`` (the replay's and the digests' plots alike).

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

mention_json: Callable[[dict[str, Any]], str] = json.JSONEncoder(ensure_ascii=False).encode
"""A ``MentionRecord.to_dict`` record's ``mentions.jsonl`` line (no newline):
``json.dumps(rec, ensure_ascii=False)``, the text the file has always had, without
building an encoder per call."""


def _reasons_json(t: tuple[str, ...]) -> str:
    return json.dumps(t, ensure_ascii=False)


class MentionRecord(msgspec.Struct, kw_only=True, gc=False):
    """A mention and its reply clock, as ``mentions.jsonl``, the store, the dashboard and
    the digests show it (field order: that of a ``mentions.jsonl`` line)."""

    key: str
    """``Mention.key``: brand and post id (the store's primary key; not in the JSON)."""
    post_id: str
    """The post's id (``id`` in the JSON)."""
    brand: str
    kind: str | None = None
    created_at: float
    seen_at: float | None = None
    author_id: str | None = None
    author_name: str | None
    """The screen name (``author`` in the JSON; from a stored row: the shown name, see
    ``shown_author``)."""
    followers: int
    text: str
    keywords: tuple[str, ...] | None = None
    sentiment: float
    negative: bool
    polarity: str | None = None
    p_negative: float | None = None
    severity: str
    terms: tuple[str, ...] | None = None
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
        return cls(
            key=clock.key, post_id=clock.post_id, brand=clock.brand, kind=str(clock.kind),
            created_at=clock.created_at, seen_at=clock.seen_at, author_id=clock.author_id,
            author_name=clock.author_name, followers=clock.followers, text=clock.text,
            keywords=clock.keywords, sentiment=clock.sentiment, negative=clock.negative,
            polarity=clock.polarity, p_negative=clock.p_negative, severity=clock.severity,
            terms=clock.terms, reasons=clock.reasons, needs_reply=clock.needs_reply,
            replied_at=clock.replied_at, replied_by=clock.replied_by, acked_by=clock.acked_by,
            private_resolve_at=clock.private_resolve_at, incident_id=clock.incident_id)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MentionRecord:
        """A stored row read back, values in ``SHOWN_MENTION_COLUMNS`` order (what
        ``Store.mention_rows`` and ``Store.mentions_between`` return)."""
        (key, brand, post_id, created, author, followers, text, sentiment, negative,
         severity, reasons, needs_reply, replied_at, replied_by, acked_by, private_at,
         incident_id) = row
        return cls(
            key=key, post_id=str(post_id), brand=brand, created_at=float(created),
            author_name=author,
            followers=int(followers), text=text, sentiment=float(sentiment),
            negative=bool(negative), severity=severity, reasons=tuple(json.loads(reasons)),
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
        """The ``mentions.jsonl`` record, times in ``tz``. ``until``: a reply made at or
        after it is left out (``replied_at``, ``reply_seconds``: a digest's period end)."""
        replied = self.replied_at if self.replied_at is None or self.replied_at < until \
            else None
        private = self.private_resolve_at
        return {
            "id": self.post_id, "brand": self.brand, "kind": self.kind,
            "created_at": format_instant(self.created_at, tz),
            "author_id": self.author_id, "author": self.author_name,
            "followers": self.followers, "text": self.text,
            "keywords": None if self.keywords is None else list(self.keywords),
            "sentiment": self.sentiment, "negative": self.negative,
            "polarity": self.polarity, "p_negative": self.p_negative,
            "severity": self.severity,
            "terms": None if self.terms is None else list(self.terms),
            "reasons": list(self.reasons), "needs_reply": self.needs_reply,
            "replied_at": None if replied is None else format_instant(replied, tz),
            "reply_seconds": None if replied is None else replied - self.created_at,
            "replied_by": self.replied_by,
            "acked_by": self.acked_by,
            "private_resolve_at": None if private is None else format_instant(private, tz),
            "incident_id": self.incident_id,
        }

    def to_json(self, tz: tzinfo) -> str:
        """The ``mentions.jsonl`` line (no newline): ``json.dumps(to_dict(tz),
        ensure_ascii=False)``."""
        return mention_json(self.to_dict(tz))


class Stored(Protocol):
    """What a stored mention row is made of: a ``MentionRecord``, or the engine's
    ``ReplyClock`` itself (whose attributes the record's fields are named after)."""

    @property
    def key(self) -> str: ...
    @property
    def brand(self) -> str: ...
    @property
    def post_id(self) -> str: ...
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
    def sentiment(self) -> float: ...
    @property
    def negative(self) -> bool: ...
    @property
    def severity(self) -> str: ...
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


def stored_rows(mentions: Iterable[Stored],
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


report_fields: Callable[[dict[str, Any]], tuple[object, ...]] = operator.itemgetter(
    *MENTION_FIELDS)
"""A ``to_dict`` record's values of ``MENTION_FIELDS``, in that order (what the replay
hands its report process)."""


def report_record(values: Sequence[object]) -> dict[str, Any]:
    """The report's mention record from ``report_fields`` values."""
    return dict(zip(MENTION_FIELDS, values, strict=True))
