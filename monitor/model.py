"""The records that flow through crisismon, one stage to the next.

`RawLine -> Post | Action -> Mention (rules.matching + scoring) -> Alert (rules.engine)`.

Times are plain floats, seconds since the Unix epoch (UTC). Only the clock module
reads the time; every other stage is handed ``now``. Floats keep the deadline heap
cheap and make the engine's arithmetic exact for whole seconds.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

Instant = float
"""Seconds since the Unix epoch, UTC."""


class PostKind(StrEnum):
    """What a feed line is: a status (微博) or a comment (评论)."""

    STATUS = "status"
    COMMENT = "comment"


class ActionKind(StrEnum):
    """A responder's move recorded in a feed or sent to the API."""

    ACK = "ack"
    RESOLVE = "resolve"


# The records built per post are msgspec Structs, not dataclasses. A replay builds a Post
# and an Author per feed line twice (parsed in the reader, decoded again in the replay's
# process), and a frozen dataclass's __init__ (object.__setattr__ per field) costs ~3.5 µs
# to a Struct's 0.4 µs; msgpack decodes them 2.4x faster. They encode to the same JSON
# (field names and order), so stored events are byte-identical. gc=False: they hold only
# strings, numbers, tuples of strings and each other, never a cycle, so the collector need
# not track them.
class Author(msgspec.Struct, frozen=True, gc=False):
    """The Weibo user who wrote a post. Ids are strings: Weibo ids overflow JS numbers."""

    id: str
    screen_name: str = ""
    followers_count: int = 0
    verified: bool = False
    verified_type: int | None = None


class Post(msgspec.Struct, frozen=True, gc=False):
    """A normalised status or comment, as every later stage sees it."""

    id: str
    kind: PostKind
    created_at: Instant
    text: str
    author: Author
    reposts_count: int = 0
    comments_count: int = 0
    attitudes_count: int = 0
    reposts_id: str | None = None
    """For a status: the id of the status it reposts (``retweeted_status.id``)."""
    on_status_id: str | None = None
    """For a comment: the status it comments on (``status.id``)."""
    reply_to_id: str | None = None
    """For a comment: the comment it answers (``reply_comment.id``)."""
    source: str = ""
    """Where it came from (feed file, poller, MQTT topic), for logs and dedupe stats."""

    @property
    def targets(self) -> tuple[str, ...]:
        """Ids of the posts this one answers or reposts, nearest first."""
        ids = (self.reply_to_id, self.on_status_id, self.reposts_id)
        return tuple(i for i in ids if i)


class Action(msgspec.Struct, frozen=True, gc=False):
    """A responder's ack or resolve of an alert, a mention or an incident."""

    id: str
    action: ActionKind
    target: str
    by: str
    created_at: Instant
    public: bool | None = None
    source: str = ""


Event = Post | Action


class Score(msgspec.Struct, frozen=True, gc=False):
    """What the scoring stage concluded about one text."""

    sentiment: float
    """Probability the text is positive, 0..1."""
    negative: bool
    severity: str = "P4"
    terms: tuple[str, ...] = ()
    """Crisis-lexicon terms found in the text, then (when ``danger``) the harm cues that
    made it a harm report and are not lexicon terms (送医, 上吐下泻, 孩子)."""
    danger: bool = False
    """True when the text reports real harm (poisoning, fire, explosion, injury, death, a
    child in danger, a product failure that could hurt): not negated (没有受伤), not a
    worry (免得被辐射), not a figure of speech (好吃到爆炸), not clearly positive. Read by
    ``rules.harm`` without the sentiment model: a factual report of harm counts even when
    the model calls it neutral. See docs/severity.md."""
    reasons: tuple[str, ...] = ()
    """Why this severity, in words a responder reads in the alert."""
    polarity: str = ""
    """``negative``, ``neutral`` or ``positive`` (the three-class model's reading; always
    ``negative`` when ``negative`` is true). Empty only for a hand-built score."""
    p_negative: float = 0.0
    """Probability the text is negative, 0..1 (three-class model)."""


class Mention(msgspec.Struct, frozen=True, gc=False):
    """A post that is really about a brand, written by someone who is not the brand."""

    post: Post
    brand: str
    score: Score
    needs_reply: bool = True
    """False for a pure repost (empty or only 转发微博): volume, but nothing to answer."""
    keywords: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Mentions are per brand: one post naming two brands has two reply clocks."""
        return f"{self.brand}\x1f{self.post.id}"
