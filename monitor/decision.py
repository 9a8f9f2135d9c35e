"""What the pipeline decided about a post, stored with it: the facts a restart re-arms from.

When a post is first handled, the pipeline decides which brands it is about (matching),
how it scores (sentiment, severity, crisis terms), whether it needs a reply, and which
brands' official accounts wrote it (with the arguing terms of a reply). Those decisions
are stored in the post's ``events`` row, in the transaction that stores the post. A
restart, a peer's catch-up or a takeover feed the engine these stored decisions, never
the current matcher and model: a new keyword or a retrained model applies to new posts
only, and nothing about the past is ever decided twice.
"""

from __future__ import annotations

import msgspec

from rules.records import Score


class BrandDecision(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The post is a mention of ``brand``."""

    brand: str
    keywords: tuple[str, ...]
    score: Score
    needs_reply: bool


class Decision(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Everything decided about one post: the brands it mentions, the brands whose
    official account wrote it, each with the arguing terms found in it (a reply only),
    and, for a post about no brand in a known story (a repost or comment), the score of
    its own words (None: it has none, so it counts as volume only)."""

    mentions: tuple[BrandDecision, ...] = ()
    official: tuple[tuple[str, tuple[str, ...]], ...] = ()
    story: Score | None = None


NOTHING = Decision()
"""A post about no brand, by no official account: stored as an empty value."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Decision)


def encode(decision: Decision) -> bytes:
    """As stored in ``events.decision``: empty for ``NOTHING`` (most posts)."""
    return b"" if decision == NOTHING else _encoder.encode(decision)


def decode(value: bytes | None) -> Decision | None:
    """The stored decision; None for a row stored before decisions were (decide anew)."""
    if value is None:
        return None
    if not value:
        return NOTHING
    return _decoder.decode(value)
