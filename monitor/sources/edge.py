"""The live edge: raw payloads (MQTT messages, API pages) into events, bad input counted.

Every live source passes what it receives through an :class:`Edge` of its own, so bad
input is rejected the same way everywhere: too large, not UTF-8, not JSON, or not a
post (``monitor.normalise.to_event`` says why). A rejection is counted per reason and
logged with its source and place; the source keeps running. Text normalisation is
``to_event``'s job, done once here at the edge for every source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec
import structlog

from monitor.normalise import (
    BadInput,
    invalid_utf8,
    plain_post,
    simplify_posts,
    to_event,
)
from rules.records import Event

log = structlog.get_logger(__name__)

MAX_PAYLOAD = 1_048_576
"""Bytes in one message: a post is ~1 KB, so a megabyte is a large array or an attack."""
LOG_FIRST = 20
"""Rejections logged one by one per source; after that one line per ``LOG_EVERY``."""
LOG_EVERY = 1000
_BOM = b"\xef\xbb\xbf"
_decoder = msgspec.json.Decoder()


class Rejection(StrEnum):
    """Why an input was refused at the edge."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_A_POST = "not_a_post"


@dataclass(slots=True)
class EdgeStats:
    """What one source's edge has seen: items accepted and rejected, by reason."""

    payloads: int = 0
    accepted: int = 0
    rejected: Counter[Rejection] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class Accepted:
    """The events of one payload, with the raw objects they came from (for recording)."""

    events: list[Event]
    raw: list[dict[str, Any]]
    rejected: int


class Edge:
    """Decodes and validates the raw input of one source."""

    def __init__(self, source: str, max_payload: int = MAX_PAYLOAD) -> None:
        self.source = source
        self.max_payload = max_payload
        self.stats = EdgeStats()

    def decode(self, data: bytes, where: str = "", simplify: bool = True) -> Accepted:
        """One payload: a JSON object or an array of them. Never raises for bad input.
        ``simplify`` False: the posts' texts are left for ``simplify_posts``."""
        self.stats.payloads += 1
        if len(data) > self.max_payload:
            self.reject(Rejection.TOO_LARGE, where, f"{len(data)} bytes > {self.max_payload}")
            return Accepted([], [], 1)
        if data.startswith(_BOM):  # some publishers write one; it is not an error in the post
            data = data[len(_BOM):]
        try:
            obj = _decoder.decode(data)
        except (UnicodeDecodeError, msgspec.DecodeError, RecursionError) as exc:
            # RecursionError: [[[[... bombs. Bad UTF-8 is told apart by the bytes, not by
            # the exception type, which depends on the msgspec release (``invalid_utf8``).
            bad = exc if isinstance(exc, UnicodeDecodeError) else invalid_utf8(data)
            if bad is not None:
                self.reject(Rejection.NOT_UTF8, where, f"invalid UTF-8 at byte {bad.start}")
            else:
                self.reject(Rejection.NOT_JSON, where, str(exc))
            return Accepted([], [], 1)
        return self.accept(obj if isinstance(obj, list) else [obj], where)

    def decode_many(self, payloads: Sequence[tuple[bytes, str]]) -> Accepted:
        """``decode`` of each ``(payload, where)``, as one batch of events, without the raw
        objects (no recorder wants them). A payload holding one post of the usual shape
        is decoded straight into a ``Post`` (``normalise.plain_post``, its text not yet in
        simplified characters), and the batch's texts are simplified together
        (``simplify_posts``): ~0.5 µs a text where ``simplified`` one by one cost ~10 µs,
        the largest part of the edge's cost under a firehose. Any other payload takes
        ``decode``. Same events, same counts and rejections as ``decode`` one by one."""
        events: list[Event] = []
        rejected = 0
        stats = self.stats
        max_payload = self.max_payload
        source = self.source
        for data, where in payloads:
            if len(data) <= max_payload and not data.startswith(_BOM):
                post = plain_post(data, source, simplify=False)
                if post is not None:
                    stats.payloads += 1
                    stats.accepted += 1
                    events.append(post)
                    continue
            got = self.decode(data, where, simplify=False)
            events.extend(got.events)
            rejected += got.rejected
        simplify_posts(events)
        return Accepted(events, [], rejected)

    def accept(self, objs: Iterable[Any], where: str = "", simplify: bool = True) -> Accepted:
        """Objects already decoded from JSON (an API page): keep the posts, count the rest.
        ``simplify`` False: the posts' texts are left for ``simplify_posts``."""
        events: list[Event] = []
        raw: list[dict[str, Any]] = []
        rejected = 0
        for i, obj in enumerate(objs):
            try:
                event = to_event(obj, self.source, simplify)
            except BadInput as exc:
                reason = str(exc)
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
                # to_event should only raise BadInput; a hostile shape must still not stop
                # the source, so anything it trips over is a rejected post, not a crash.
                reason = f"unusable ({type(exc).__name__}: {exc})"
            else:
                events.append(event)
                raw.append(obj)
                continue
            rejected += 1
            self.reject(Rejection.NOT_A_POST, f"{where}[{i}]" if where else f"[{i}]", reason)
        self.stats.accepted += len(events)
        return Accepted(events, raw, rejected)

    def reject(self, why: Rejection, where: str, detail: str) -> None:
        """Count a rejection and log it (every one at first, then a sample with totals)."""
        self.stats.rejected[why] += 1
        total = self.stats.rejected_total
        if total <= LOG_FIRST or total % LOG_EVERY == 0:
            log.warning("input rejected", source=self.source, where=where, reason=str(why),
                        detail=detail[:200], rejected_total=total)
