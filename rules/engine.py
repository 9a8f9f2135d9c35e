"""The escalation engine: plain state plus deadlines, advanced by whoever holds the clock.

It never reads the time and does no I/O. Each ``on_*`` call takes the current time and
returns the alerts that fall due; ``advance(until)`` fires deadlines in time order (ties
in the order they were set), re-reading the state at each, so a reply that came in
before a deadline quietly cancels it. The same input therefore gives the same alerts,
live or in replay, and a restart rebuilds the same state from a snapshot of it
(``snapshot``/``restore``) and the stored events after it. Decisions are made once: a
mention's deadlines follow the reply rule it was first seen under (``ReplyClock.sla``),
an incident's the crisis settings it opened under (``policy``).

Deadlines (contract section 3), per mention: warn -> breach -> escalated (only the next
one is queued: one heap entry per clock keeps a million open mentions cheap), and the
public follow-up after a private resolve; per incident: checkpoints, the statement
deadline and the close check.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import math
import operator
import pickle
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from enum import IntEnum
from pathlib import Path

from rules import wording
from rules.crisis import (
    BrandActivity,
    Detection,
    Incident,
    Story,
    Times,
    detect_burst,
    detect_danger,
    detect_story,
    detect_wordless_spread,
    harm_words,
    is_negative,
)
from rules.deadlines import escalate_due, followup_due, reply_due, warn_due
from rules.policy import BrandConfig, CrisisConfig, SlaConfig
from rules.records import (
    Action,
    ActionKind,
    Alert,
    AlertType,
    Author,
    Level,
    Mention,
    Post,
    PostKind,
    Score,
    alert_id,
    format_duration,
    mention_alert_id,
)

HOUR = 3600.0


class Step(IntEnum):
    """What a deadline is for. The order is the reply ladder's."""

    WARN = 0
    BREACH = 1
    ESCALATE = 2
    FOLLOWUP = 3
    CHECKPOINT = 4
    STATEMENT = 5
    CLOSE = 6


# Enum members the hot paths read are held in module names (``_LAST_RUNG`` ...) or
# tables: on Python 3.11 reading one off its class (``Step.WARN``) costs ~0.3 us, as
# ``EnumType`` defines ``__getattr__``, which puts every lookup on an enum class through
# a slow hook; the reply ladder read ~5 per page (~100,000 pages on a mention-heavy day).
_REPLY_STEPS: dict[Step, tuple[AlertType, int,
                               tuple[Step, Callable[[float, SlaConfig], float]] | None]] = {
    Step.WARN: (AlertType.REPLY_WARNING, Level.DUTY, (Step.BREACH, reply_due)),
    Step.BREACH: (AlertType.REPLY_BREACH, Level.SUPERVISOR, (Step.ESCALATE, escalate_due)),
    Step.ESCALATE: (AlertType.REPLY_ESCALATED, Level.LEADERSHIP, None),
}
"""Each step of the reply ladder: its page's type and level, and the next step with when
it falls due (from the post's time and the mention's reply rule), if there is one."""
_LAST_RUNG = Step.ESCALATE
"""The reply ladder's last step: the steps up to it are the ladder's."""
_FIRST_RUNG, _MENTION_NEW = Step.WARN, AlertType.MENTION_NEW
_STATUS, _COMMENT_KIND = PostKind.STATUS, PostKind.COMMENT


_NEEDS_REPLY, _TRACKS_REPOSTS, _NEGATIVE, _VERIFIED, _COMMENT = 1, 2, 4, 8, 16
_DANGER, _OPENED = 32, 64
"""A mention that reports harm; one whose own story opened an incident (for the story
made from its clock when it is first reposted)."""
_SHARED_MAX = 100_000
SNAPSHOT_FORMAT = hashlib.blake2b(
    b"".join(Path(__file__).with_name(n).read_bytes() for n in ("engine.py", "crisis.py")),
    digest_size=8).hexdigest()
"""Which code a snapshot was taken by: a snapshot is only restored by the same engine and
detector code (any other build feeds the stored events again, see ``Pipeline.rebuild``),
so a field added, renamed or re-meant can never be read back wrong."""
_DERIVED = ("clocks", "by_post", "dirty_mentions", "dirty_incidents")
"""Engine attributes a snapshot leaves out: views over ``_posts``, and what the caller
has written to the store already."""


class SnapshotError(ValueError):
    """A snapshot this code cannot restore (another build's, or damaged)."""


_INCIDENT_ALERTS = frozenset({AlertType.CRISIS_OPENED, AlertType.CRISIS_CHECKPOINT,
                              AlertType.CRISIS_ESCALATED, AlertType.CRISIS_CLOSED})


def compact_id(value: str) -> str | int:
    """A Weibo id as held in memory: an int when that is lossless (~36 bytes instead of
    ~68 for a str of 19 digits), else the str itself. ``str()`` gives the id back."""
    if value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
        return int(value)
    return value


class _Rare:
    """What few mentions ever get (an ack, a private resolve, reposts): kept apart, so
    the others don't pay a slot each for it."""

    __slots__ = ("acked_by", "private_resolve_at", "reposts")

    def __init__(self) -> None:
        self.acked_by: str | None = None
        self.private_resolve_at: float | None = None
        self.reposts: Times | None = None


class ReplyClock:
    """The 5-minute rule for one mention: when it is due, and what has happened.

    A compact record of the mention, not the ``Mention`` itself: a million open mentions
    must fit in memory, and a ``Mention`` + ``Post`` + ``Author`` + ``Score`` costs four
    objects where one does (``bench/memory.py``). Only what the rules, the wording and the
    outputs read is kept; ``mention`` and ``post`` rebuild the records on demand."""

    __slots__ = (
        "_aid",
        "_pid",
        "_rare",
        "author_name",
        "brand",
        "comments_count",
        "created_at",
        "flags",
        "followers",
        "incident_id",
        "keywords",
        "last_public_reply_at",
        "last_reposts_count",
        "p_negative",
        "polarity",
        "reasons",
        "replied_at",
        "replied_by",
        "reposts_count",
        "seen_at",
        "sentiment",
        "severity",
        "sla",
        "terms",
        "text",
    )

    def __init__(self, mention: Mention, seen_at: float,
                 share: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda t: t,
                 pid: str | int | None = None) -> None:
        post, author, score = mention.post, mention.post.author, mention.score
        self._pid = compact_id(post.id) if pid is None else pid
        self.brand = mention.brand
        self.created_at = post.created_at
        self.text = post.text
        self._aid = compact_id(author.id)
        self.author_name = author.screen_name
        self.followers = author.followers_count
        self.reposts_count = post.reposts_count
        self.comments_count = post.comments_count
        self.sentiment = score.sentiment
        self.polarity = score.polarity
        self.p_negative = score.p_negative
        self.severity = score.severity
        self.terms = share(score.terms)
        self.reasons = share(score.reasons)
        self.keywords = share(mention.keywords)
        self.flags = (_NEEDS_REPLY * mention.needs_reply | _NEGATIVE * score.negative
                      | _VERIFIED * author.verified
                      | _COMMENT * (post.kind is _COMMENT_KIND))
        self.seen_at = seen_at
        self.replied_at: float | None = None
        self.replied_by: str | None = None
        self.last_public_reply_at: float | None = None
        self._rare: _Rare | None = None
        self.last_reposts_count = 0
        self.incident_id: str | None = None
        """The incident open for the brand when this mention came in (or that it opened)."""
        self.sla: SlaConfig = _DEFAULT_SLA
        """The reply rule in force when the mention was first seen: its deadlines are
        decided then, once; a later config change applies to new mentions only."""

    def __reduce__(self) -> tuple[object, ...]:
        # A tuple of the slots, not pickle's default (None, dict) state: 100,000 clocks
        # pickle to 7.5 MB instead of 12.7 MB, in the same time. Read by one attrgetter
        # (C) rather than a generator of getattr: that was half of a forked snapshot's CPU.
        return (_clock_from_slots, _clock_slots(self))

    @property
    def post_id(self) -> str:
        return str(self._pid)

    def _more(self) -> _Rare:
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        return rare

    @property
    def acked_by(self) -> str | None:
        return None if self._rare is None else self._rare.acked_by

    @acked_by.setter
    def acked_by(self, value: str | None) -> None:
        self._more().acked_by = value

    @property
    def private_resolve_at(self) -> float | None:
        return None if self._rare is None else self._rare.private_resolve_at

    @private_resolve_at.setter
    def private_resolve_at(self, value: float | None) -> None:
        self._more().private_resolve_at = value

    @property
    def reposts(self) -> Times | None:
        """Reposts seen of this mention: does it spread? Created at the first repost (most
        mentions are never reposted; an empty ``Times`` per open mention costs ~160 bytes)."""
        return None if self._rare is None else self._rare.reposts

    @reposts.setter
    def reposts(self, value: Times | None) -> None:
        self._more().reposts = value

    @property
    def author_id(self) -> str:
        return str(self._aid)

    @property
    def key(self) -> str:
        """``Mention.key``: brand and post id."""
        return f"{self.brand}\x1f{self._pid}"

    @property
    def needs_reply(self) -> bool:
        return bool(self.flags & _NEEDS_REPLY)

    @property
    def negative(self) -> bool:
        return bool(self.flags & _NEGATIVE)

    @property
    def verified(self) -> bool:
        return bool(self.flags & _VERIFIED)

    @property
    def kind(self) -> PostKind:
        return _COMMENT_KIND if self.flags & _COMMENT else _STATUS

    @property
    def is_open(self) -> bool:
        return self.flags & _NEEDS_REPLY != 0 and self.replied_at is None

    @property
    def author(self) -> Author:
        return Author(id=self.author_id, screen_name=self.author_name,
                      followers_count=self.followers, verified=self.verified)

    @property
    def post(self) -> Post:
        """The post as far as the clock keeps it (no repost/comment links, no source)."""
        return Post(id=self.post_id, kind=self.kind, created_at=self.created_at,
                    text=self.text, author=self.author, reposts_count=self.reposts_count,
                    comments_count=self.comments_count)

    @property
    def mention(self) -> Mention:
        return Mention(post=self.post, brand=self.brand,
                       score=Score(sentiment=self.sentiment, negative=self.negative,
                                   severity=self.severity, terms=self.terms,
                                   reasons=self.reasons, polarity=self.polarity,
                                   p_negative=self.p_negative),
                       needs_reply=self.needs_reply, keywords=self.keywords)


_DEFAULT_SLA = SlaConfig()
_clock_slots = operator.attrgetter(*ReplyClock.__slots__)
"""A clock's slots, in ``__slots__`` order, as one tuple (``ReplyClock.__reduce__``)."""


def _clock_from_slots(*values: object) -> ReplyClock:
    """A ``ReplyClock`` back from ``__reduce__`` (engine snapshots)."""
    clock = ReplyClock.__new__(ReplyClock)
    for name, value in zip(ReplyClock.__slots__, values, strict=True):
        setattr(clock, name, value)
    return clock


class ClockMap(Mapping[str, ReplyClock]):
    """``clocks``: reply clocks by mention key (``brand\x1fpost id``), in the order seen.

    A view over the engine's post index, so no key string is kept per mention."""

    def __init__(self, posts: dict[str | int, ReplyClock | tuple[ReplyClock, ...]]) -> None:
        self._posts = posts
        self._n = 0

    def __getitem__(self, key: str) -> ReplyClock:
        brand, sep, post_id = key.partition("\x1f")
        if sep:
            for clock in _each(self._posts.get(compact_id(post_id))):
                if clock.brand == brand:
                    return clock
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return (c.key for c in self.values())

    def __len__(self) -> int:
        return self._n

    def values(self) -> _Clocks:  # type: ignore[override]
        return _Clocks(self)


class _Clocks:
    """``clocks.values()``: sized, iterable and reversible like a dict's."""

    def __init__(self, clocks: ClockMap) -> None:
        self._clocks = clocks

    def __len__(self) -> int:
        return len(self._clocks)

    def __iter__(self) -> Iterator[ReplyClock]:
        for entry in self._clocks._posts.values():
            if type(entry) is tuple:
                yield from entry
            else:
                yield entry  # type: ignore[misc]

    def __reversed__(self) -> Iterator[ReplyClock]:
        for entry in reversed(self._clocks._posts.values()):
            if type(entry) is tuple:
                yield from reversed(entry)
            else:
                yield entry  # type: ignore[misc]


def _each(entry: ReplyClock | tuple[ReplyClock, ...] | None) -> tuple[ReplyClock, ...]:
    if entry is None:
        return ()
    return entry if type(entry) is tuple else (entry,)  # type: ignore[return-value]


class PostIndex:
    """``by_post``: which post ids are mentions (``in``), and their mention keys."""

    def __init__(self, posts: dict[str | int, ReplyClock | tuple[ReplyClock, ...]]) -> None:
        self._posts = posts

    def __contains__(self, post_id: object) -> bool:
        return isinstance(post_id, str) and compact_id(post_id) in self._posts

    def get(self, post_id: str, default: object = None) -> object:
        entry = self._posts.get(compact_id(post_id))
        return default if entry is None else [c.key for c in _each(entry)]


@dataclass(slots=True)
class Deadline:
    due: float
    seq: int
    step: Step = field(compare=False)
    subject: ReplyClock | str = field(compare=False)
    """The mention's clock, or an incident id."""
    arg: float = field(compare=False, default=0.0)
    """Checkpoint offset, or the resolve time a follow-up belongs to."""
    # Not a NamedTuple, whose C-level comparisons saved ~0.09 s of a 100,000-post replay:
    # a 5-tuple takes 16 bytes more, +16 MiB for the million open mentions of
    # bench/memory.py (917 -> 933 MiB against its 1 GB target).

    def __lt__(self, other: Deadline) -> bool:
        # By (due, seq), written out: ``order=True`` builds two tuples per comparison,
        # and the heap compares ~10 times per deadline (a million times on the
        # mention-heavy day of bench/replay_throughput.py).
        due = self.due
        odue = other.due
        return due < odue or (due == odue and self.seq < other.seq)


@dataclass(slots=True)
class EngineStats:
    mentions: int = 0
    replies: int = 0
    unknown_targets: int = 0
    incidents: int = 0
    story_posts: int = 0


class EscalationEngine:
    """Reply clocks and crisis incidents for every configured brand."""

    def __init__(self, brands: Sequence[BrandConfig], sla: SlaConfig, crisis: CrisisConfig,
                 tz: tzinfo) -> None:
        self.sla = sla
        self.crisis = crisis
        self.tz = tz
        self.brands = {b.name: b for b in brands}
        self._posts: dict[str | int, ReplyClock | tuple[ReplyClock, ...]] = {}
        """Post id (``compact_id``) -> its clock, or a tuple of them when a post names
        several brands: the one index of every mention."""
        self.clocks = ClockMap(self._posts)
        self.by_post = PostIndex(self._posts)
        self._shared: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.incidents: dict[str, Incident] = {}
        self.policies: dict[str, CrisisConfig] = {}
        """The crisis config each incident opened under (checkpoints, statement due, window,
        close checks): frozen at opening, like an escalation chain; see ``policy``."""
        self.open_incident: dict[str, str] = {}
        self.activity: dict[str, BrandActivity] = {name: BrandActivity() for name in self.brands}
        self.stories: dict[str | int, list[Story]] = {}
        """Root post id (``compact_id``) -> the stories of it, one per brand it names."""
        self.early_replies: dict[tuple[str, str], float] = {}
        self.stats = EngineStats()
        self.dirty_mentions: dict[ReplyClock, None] = {}
        self.dirty_incidents: dict[str, None] = {}
        """Changed since the caller last took them (for the store's projections), in the
        order they first changed: dicts, not sets, so the rows are written in the same
        order on every run (a set of clocks iterates in memory-address order, a set of
        ids in hash order, which changes from run to run)."""
        self._heap: list[Deadline] = []
        """Deadlines not in a lane (``_lanes``), by (due, seq)."""
        self._lanes: tuple[deque[Deadline], ...] = (deque(), deque(), deque())
        """The reply ladder's deadlines, one lane per step (warn, breach, escalate), each in
        (due, seq) order: a step's deadlines are mostly set in the order they fall due
        (mentions come in time order, and each step follows the one before by a fixed
        span), so a deadline is appended to its lane when it falls due no sooner than the
        lane's last, and goes on the heap otherwise (a post that arrived late, a changed
        reply rule). The next deadline is the least of the heap's top and the lanes'
        heads: for a mention-heavy day's ~100,000 ladder steps, a deque append and a few
        comparisons each instead of a heap's ~10 ``Deadline.__lt__`` calls (Python) per
        push and pop."""
        self._next_due = math.inf
        """When the next deadline falls (inf: none): ``advance`` returns at once before it."""
        self._seq = 0

    # ----------------------------------------------------------------- snapshots
    def snapshot(self) -> bytes:
        """The engine's whole state as bytes; ``restore`` gives back an equal engine.

        Generic on purpose: every attribute is kept (pickled) except the derived views, so
        state a detector adds is covered without this method knowing its fields. Taken
        between batches, when ``dirty_*`` have been written (they are left out)."""
        state = {k: v for k, v in self.__dict__.items() if k not in _DERIVED}
        state["_n_clocks"] = self.clocks._n
        return pickle.dumps((SNAPSHOT_FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> EscalationEngine:
        """The engine a ``snapshot`` was taken of; ``SnapshotError`` if this code cannot
        read it (another build, or damaged)."""
        enabled = gc.isenabled()
        gc.disable()  # ~10^5 objects, none garbage: the collector's passes only cost time
        try:
            version, state = pickle.loads(blob)
        except Exception as exc:
            raise SnapshotError(f"unreadable snapshot: {exc}") from exc
        finally:
            if enabled:
                gc.enable()
        if version != SNAPSHOT_FORMAT:
            raise SnapshotError(f"snapshot of another build ({version} != {SNAPSHOT_FORMAT})")
        engine = cls.__new__(cls)
        n = state.pop("_n_clocks")
        engine.__dict__.update(state)
        engine.clocks = ClockMap(engine._posts)
        engine.clocks._n = n
        engine.by_post = PostIndex(engine._posts)
        engine.dirty_mentions = {}
        engine.dirty_incidents = {}
        return engine

    def forget_settled(self, before: float) -> int:
        """Drop the mentions first seen before ``before`` that nothing waits on any more
        (no deadline pending, not the post behind an open incident); returns how many.

        What keeps the live daemon's memory and its snapshots bounded by recent and open
        state, not by history: the store keeps the rows (``mentions``) for the dashboard
        and reports until the retention prunes them. A reply, repost or ack naming a
        forgotten mention then changes nothing, which is what it would have changed."""
        oldest = next(iter(self._posts.values()), None)
        if oldest is None or _each(oldest)[0].seen_at >= before:
            return 0  # nothing that old (the index is in the order first seen): no scan
        waiting = {id(d.subject) for d in self.deadlines() if type(d.subject) is ReplyClock}
        keep = {compact_id(self.incidents[i].trigger_post_id or "")
                for i in self.open_incident.values()}
        drop: list[str | int] = []
        for pid, entry in self._posts.items():
            clocks = _each(entry)
            if clocks[0].seen_at >= before:
                break  # the index is in the order first seen
            if pid in keep or any(id(c) in waiting for c in clocks):
                continue
            drop.append(pid)
        n = 0
        for pid in drop:
            n += len(_each(self._posts.pop(pid)))
        self.clocks._n -= n
        return n

    # ----------------------------------------------------------------- deadlines
    def next_due(self) -> float | None:
        """When the next deadline falls, or None if nothing is pending."""
        nxt = self._next_due
        return None if nxt == math.inf else nxt

    def pending(self) -> int:
        return len(self._heap) + sum(map(len, self._lanes))

    def deadlines(self) -> Iterator[Deadline]:
        """Every pending deadline, in no particular order."""
        yield from self._heap
        for lane in self._lanes:
            yield from lane

    def _at(self, due: float, step: Step, subject: ReplyClock | str, arg: float = 0.0) -> None:
        self._seq += 1
        self._queue(Deadline(due, self._seq, step, subject, arg))

    def _queue(self, d: Deadline) -> None:
        """Pend ``d`` (its seq the newest): in its step's lane if it is a step of the reply
        ladder that falls due no sooner than the lane's last, else on the heap."""
        due = d.due
        if due < self._next_due:
            self._next_due = due
        if d.step <= _LAST_RUNG:
            lane = self._lanes[d.step]
            if not lane or lane[-1].due <= due:  # (its seq is the newest: the lane stays
                lane.append(d)                   # in (due, seq) order)
                return
        heapq.heappush(self._heap, d)

    def advance(self, until: float, inclusive: bool = True) -> list[Alert]:
        """Fire every deadline due before ``until`` (or at it, if ``inclusive``), in order.

        Each firing may queue the next step, which fires in the same call if it is due too.
        """
        out: list[Alert] = []
        nxt = self._next_due
        if nxt > until or (nxt == until and not inclusive):
            return out
        heap = self._heap
        lanes = self._lanes
        while True:
            # The earliest by (due, seq): the heap's top or a lane's head.
            d = heap[0] if heap else None
            source = None
            for lane in lanes:
                if lane:
                    head = lane[0]
                    if d is None or head.due < d.due or (head.due == d.due and head.seq < d.seq):
                        d, source = head, lane
            if d is None:
                self._next_due = math.inf
                break
            due = d.due
            if due > until or (due == until and not inclusive):
                self._next_due = due
                break
            if source is None:
                heapq.heappop(heap)
            else:
                source.popleft()
            if d.step <= _LAST_RUNG:  # the reply ladder: most deadlines, one page each
                alert = self._fire_reply(d)
                if alert is not None:
                    out.append(alert)
            else:
                out.extend(self._fire(d))
        return out

    def _fire(self, d: Deadline) -> list[Alert]:
        if d.step <= _LAST_RUNG:
            alert = self._fire_reply(d)
            return [] if alert is None else [alert]
        if d.step is Step.FOLLOWUP:
            return self._fire_followup(d)
        inc = self.incidents.get(d.subject)  # type: ignore[arg-type]
        if inc is None or not inc.is_open:
            return []
        if d.step is Step.CHECKPOINT:
            return [self._incident_alert(inc, AlertType.CRISIS_CHECKPOINT, d.due, Level.SUPERVISOR,
                                         wording.checkpoint(inc, d.arg, self._recent(inc, d.due),
                                                            self.policy(inc), self.tz),
                                         step=format_duration(d.arg))]
        if d.step is Step.STATEMENT:
            if inc.statement_at is not None and inc.statement_at <= d.due:
                return []
            return [self._incident_alert(inc, AlertType.CRISIS_ESCALATED, d.due, Level.LEADERSHIP,
                                         wording.no_statement(inc, self.policy(inc), self.tz))]
        return self._fire_close(inc, d.due)

    def _fire_reply(self, d: Deadline) -> Alert | None:
        """A step of the reply ladder: its page, unless the mention was answered; the
        next step is queued (in ``d`` itself: popped, it is no one else's)."""
        clock = d.subject
        assert isinstance(clock, ReplyClock)
        if not clock.flags & _NEEDS_REPLY or clock.replied_at is not None:
            return None  # answered (or never needed an answer): the ladder stops
        alert_type, level, after = _REPLY_STEPS[d.step]
        at = d.due
        if after is not None:
            step, due = after
            self._again(d, due(clock.created_at, clock.sla), step)
        return self._mention_alert(clock, alert_type, at, level,
                                   wording.reply_overdue(clock, alert_type, clock.sla, self.tz))

    def _again(self, d: Deadline, due: float, step: Step) -> None:
        """Queue ``d``, just popped, again for its subject's next ``step``: as ``_at``
        would, without a new ``Deadline`` (two steps of the ladder per unanswered mention)."""
        self._seq += 1
        d.due, d.seq, d.step = due, self._seq, step
        self._queue(d)

    def _fire_followup(self, d: Deadline) -> list[Alert]:
        clock = d.subject
        assert isinstance(clock, ReplyClock)
        if clock.private_resolve_at != d.arg:
            return []
        if clock.last_public_reply_at is not None and clock.last_public_reply_at >= d.arg:
            return []
        return [self._mention_alert(clock, AlertType.RESOLUTION_NOT_PUBLIC, d.due, Level.SUPERVISOR,
                                    wording.not_public(clock, clock.sla, self.tz),
                                    extra=repr(d.arg))]

    def _fire_close(self, inc: Incident, now: float) -> list[Alert]:
        recent = self._recent(inc, now)
        cfg = self.policy(inc)
        if recent > max(cfg.close_factor * inc.baseline_per_hour,
                        cfg.baseline_floor_per_hour) or self._still_spreading(inc, now):
            self._at(now + cfg.close_check_every, Step.CLOSE, inc.id)
            return []
        inc.closed_at = now
        self.open_incident.pop(inc.brand, None)
        self.dirty_incidents[inc.id] = None
        return [self._incident_alert(inc, AlertType.CRISIS_CLOSED, now, Level.DUTY,
                                     wording.closed(inc, recent, self.tz))]

    def _still_spreading(self, inc: Incident, now: float) -> bool:
        """Is the story that opened the incident still spreading as fast as a story that
        opens one? Then it is not over, whatever the negative rate says: closing would
        only reopen a second incident for the same story at its next repost."""
        if inc.story_id is None:
            return False
        for story in self.stories.get(compact_id(inc.story_id), ()):
            if story.brand == inc.brand and \
                    story.posts.count(now - self.crisis.spread_window, now) >= \
                    self.crisis.spread_min_reposts:
                return True
        return False

    def policy(self, inc: Incident) -> CrisisConfig:
        """The crisis config ``inc`` opened under (a config change never re-times it)."""
        return self.policies.get(inc.id, self.crisis)

    def _recent(self, inc: Incident, now: float) -> int:
        """Negative mentions of the incident's brand in the hour up to ``now``."""
        return self.activity[inc.brand].negatives.count(now - HOUR, now)

    # ----------------------------------------------------------------- alerts
    def _mention_alert(self, clock: ReplyClock, alert_type: AlertType, at: float, level: int,
                       words: tuple[str, str], extra: str = "") -> Alert:
        post_id = str(clock._pid)
        brand = clock.brand
        aid = (alert_id(alert_type, brand, post_id, extra) if extra
               else mention_alert_id(alert_type, brand, post_id))
        # Positional: keywords cost ~40 % more, once per page.
        return Alert(aid, alert_type, at, brand, level, clock.severity, words[0], words[1],
                     post_id, self.open_incident.get(brand))

    def _incident_alert(self, inc: Incident, alert_type: AlertType, at: float, level: int,
                        words: tuple[str, str], step: str = "") -> Alert:
        aid = alert_id(str(alert_type), inc.id, step)
        return Alert(id=aid, type=alert_type, at=at, brand=inc.brand, level=level,
                     severity=inc.severity, title=words[0], text=words[1],
                     post_id=inc.trigger_post_id, incident_id=inc.id)

    # ----------------------------------------------------------------- inputs
    def _share(self, t: tuple[str, ...]) -> tuple[str, ...]:
        """One copy of each keyword/term/reason tuple (few distinct ones, ~50 bytes each)."""
        if not t:
            return ()
        shared = self._shared.get(t)
        if shared is None:
            if len(self._shared) >= _SHARED_MAX:
                return t
            shared = self._shared[t] = t
        return shared

    def on_mention(self, mention: Mention, now: float) -> list[Alert]:
        """A brand mention was seen: start its reply clock and look for a crisis."""
        post = mention.post
        pid = compact_id(post.id)
        entry = self._posts.get(pid)
        if entry is not None and any(c.brand == mention.brand for c in _each(entry)):
            return []
        clock = ReplyClock(mention, now, self._share, pid)
        clock.sla = sla = self.sla  # decided now, once (see ReplyClock.sla)
        if post.kind is _STATUS and not post.reposts_id:
            clock.flags |= _TRACKS_REPOSTS
            clock.last_reposts_count = post.reposts_count
        self._posts[pid] = clock if entry is None else (*_each(entry), clock)
        self.clocks._n += 1
        self.stats.mentions += 1
        early = self.early_replies.pop((mention.brand, post.id), None)
        if early is not None:
            self._mark_replied(clock, early, "official")
        out: list[Alert] = []
        if mention.needs_reply:
            out.append(self._mention_alert(clock, _MENTION_NEW, now, Level.DUTY,
                                           wording.new_mention(clock, sla, self.tz)))
            if clock.replied_at is None:
                self._at(warn_due(post.created_at, sla), _FIRST_RUNG, clock)
        out.extend(self._crisis_on_mention(mention, clock, now))
        clock.incident_id = self.open_incident.get(mention.brand)
        self.dirty_mentions[clock] = None
        if post.reposts_id:
            out.extend(self.on_reposts(post.reposts_id, 1, post.created_at, now))
        return out

    def on_official(self, post: Post, brand: str, argument_terms: Sequence[str],
                    now: float) -> list[Alert]:
        """A post by one of ``brand``'s official accounts: a reply, a statement, or both."""
        out: list[Alert] = []
        targets = post.targets
        replied: list[ReplyClock] = []
        by = post.author.screen_name or post.author.id
        # Contract: a comment answers both its status (status.id) and the comment it
        # replies to (reply_comment.id); a repost answers the status it reposts.
        for target in targets:
            mine = [c for c in _each(self._posts.get(compact_id(target))) if c.brand == brand]
            for c in mine:
                self._mark_replied(c, post.created_at, by)
                replied.append(c)
            if not mine:
                # The reply may be fetched before the mention (another poller); keep it.
                if len(self.early_replies) > 100_000:  # bounded: the oldest goes first
                    self.early_replies.pop(next(iter(self.early_replies)))
                self.early_replies[(brand, target)] = post.created_at
        self.stats.replies += 1
        inc_id = self.open_incident.get(brand)
        if post.kind is PostKind.STATUS and inc_id is not None:
            inc = self.incidents[inc_id]
            if inc.statement_at is None and post.created_at >= inc.opened_at:
                inc.statement_at = post.created_at
                inc.statement_post_id = post.id
                self.dirty_incidents[inc_id] = None
        if argument_terms and targets:
            subject = replied[0] if replied else None
            out.append(self._argument_alert(post, brand, tuple(argument_terms), subject, now))
        return out

    def _argument_alert(self, post: Post, brand: str, terms: tuple[str, ...],
                        clock: ReplyClock | None, now: float) -> Alert:
        target = clock.post_id if clock else post.targets[0]
        aid = alert_id(str(AlertType.REPLY_ARGUMENT), brand, post.id)
        title, text = wording.argument(post, brand, terms, clock, self.tz)
        return Alert(id=aid, type=AlertType.REPLY_ARGUMENT, at=now, brand=brand,
                     level=Level.SUPERVISOR, severity="P2", title=title, text=text,
                     post_id=target, incident_id=self.open_incident.get(brand))

    def _mark_replied(self, clock: ReplyClock, at: float, by: str) -> None:
        self.dirty_mentions[clock] = None
        if clock.replied_at is None:
            clock.replied_at = at
            clock.replied_by = by
        if clock.last_public_reply_at is None or at > clock.last_public_reply_at:
            clock.last_public_reply_at = at

    def on_reposts(self, target: str, n: int, at: float, now: float) -> list[Alert]:
        """``n`` reposts of ``target`` at ``at`` (a repost seen, or a counter's growth):
        counted on the mention's clock. Whether they make a crisis is the story's
        business (``on_story_post``, ``on_counts``)."""
        for clock in _each(self._posts.get(compact_id(target))):
            if not clock.flags & _TRACKS_REPOSTS:
                continue
            reposts = clock.reposts
            if reposts is None:
                reposts = clock.reposts = Times()
            reposts.add(at, n)
        return []

    def known_reposts(self, post_id: str) -> int:
        """The highest repost counter seen for a tracked status (-1 if not tracked)."""
        counts = [c.last_reposts_count for c in _each(self._posts.get(compact_id(post_id)))
                  if c.flags & _TRACKS_REPOSTS]
        return max(counts, default=-1)

    def on_counts(self, post_id: str, reposts_count: int, now: float) -> list[Alert]:
        """A known post seen again: its repost counter's growth is spread too."""
        out: list[Alert] = []
        for clock in _each(self._posts.get(compact_id(post_id))):
            growth = reposts_count - clock.last_reposts_count
            if not clock.flags & _TRACKS_REPOSTS or growth <= 0:
                continue
            clock.last_reposts_count = reposts_count
            out.extend(self.on_reposts(post_id, growth, now, now))
            for story in self._stories_of(post_id):
                if story.brand == clock.brand:
                    story.posts.add(now, growth)
                    story.n_posts += growth
                    self.activity[story.brand].posts.add(now, growth)
                    out.extend(self._check_story(story, now))
            break
        return out

    def subject_of(self, alert: Alert) -> str | None:
        """The mention key or incident id ``alert`` is about, None if the engine has neither.

        Read off the alert's own fields (crisis pages name their incident, the others their
        brand and post), not kept in a map of every alert raised: that map cost ~80 bytes
        per alert, up to four alerts per unanswered mention (``bench/memory.py``)."""
        if alert.type in _INCIDENT_ALERTS:
            return alert.incident_id if alert.incident_id in self.incidents else None
        if alert.post_id is None:
            return None
        for clock in _each(self._posts.get(compact_id(alert.post_id))):
            if clock.brand == alert.brand:
                return clock.key
        return None

    def on_action(self, action: Action, now: float, subject: str | None = None) -> list[Alert]:
        """A responder's ack or resolve, naming a mention (post id or key) or an incident.

        An action naming an alert is resolved by the caller, which has the alert
        (``subject_of``), and handed over as ``subject``."""
        subject = subject or action.target
        if subject in self.incidents:
            inc = self.incidents[subject]
            if action.action is ActionKind.ACK:
                inc.acked_by = inc.acked_by or action.by
            else:
                inc.resolved_by = action.by
            self.dirty_incidents[inc.id] = None
            return []
        named = self.clocks.get(subject)
        clocks = (named,) if named is not None else _each(self._posts.get(compact_id(subject)))
        if not clocks:
            self.stats.unknown_targets += 1
            return []
        for clock in clocks:
            self.dirty_mentions[clock] = None
            if action.action is ActionKind.ACK:
                clock.acked_by = clock.acked_by or action.by  # stops repeats, not the clock
            elif action.public:
                # The team records a public answer (e.g. from an account we don't watch).
                self._mark_replied(clock, action.created_at, action.by)
            elif clock.private_resolve_at is None:
                clock.private_resolve_at = action.created_at
                self._at(followup_due(action.created_at, clock.sla), Step.FOLLOWUP, clock,
                         action.created_at)
        return []

    # ----------------------------------------------------------------- crisis
    def knows_story(self, post_id: str) -> bool:
        """Is ``post_id`` the root of a story (a mention, or a story already reposted)?"""
        key = compact_id(post_id)
        return key in self.stories or key in self._posts

    def story_root(self, post: Post) -> str | None:
        """The root id of the known story ``post`` reposts or comments on (a story seen
        reposted already, or a mention), or None."""
        for target in (post.reposts_id, post.on_status_id, post.reply_to_id):
            if target and self.knows_story(target):
                return target
        return None

    def on_story_post(self, root: str, post: Post, score: Score | None, now: float,
                      named: frozenset[str] = frozenset()) -> list[Alert]:
        """A repost or comment of a known story: volume, reach and (``score``: its own
        words, None for a pure repost) negativity of every story of ``root``, except those
        of the ``named`` brands (the post names them itself: ``on_mention`` counted it)."""
        out = list(self.on_reposts(post.reposts_id, 1, post.created_at, now)
                   if post.reposts_id and not named else ())
        for story in self._stories_of(root):
            if story.brand not in named:
                out.extend(self._story_post(story, post, score, now))
        return out

    def story_brands(self, root: str) -> set[str]:
        """The brands ``root`` is a story of."""
        return {story.brand for story in self._stories_of(root)}

    def _stories_of(self, root: str) -> list[Story]:
        """The stories of ``root``, made from its mentions' clocks the first time it is
        reposted or commented on. Most mentions never are, and a story per mention would
        cost ~1 KB each (a million open mentions: ``bench/memory.py``)."""
        key = compact_id(root)
        stories = self.stories.get(key)
        if stories is None:
            stories = []
            for clock in _each(self._posts.get(key)):
                stories.append(self._story_from_clock(clock))
            if stories:
                self.stories[key] = stories
        return stories

    def _story_from_clock(self, clock: ReplyClock) -> Story:
        """A one-post story of a mention, as its arrival counted it (``_root_post``)."""
        story = self._new_story(clock.post_id, clock.brand, clock.created_at, clock.keywords,
                                clock.author_name or clock.author_id, clock.author_id,
                                clock.followers, clock.verified, clock.negative, clock.text)
        story.add(clock.created_at, clock.followers, clock.needs_reply, clock.negative)
        if clock.flags & _DANGER:
            story.harm = 1
            story.harm_terms = harm_words(clock.terms, clock.reasons)
        story.incident_id = clock.incident_id if clock.flags & _OPENED else None
        return story

    def _new_story(self, root: str, brand: str, at: float, keywords: tuple[str, ...],
                   author: str, author_id: str, followers: int, verified: bool,
                   negative: bool, text: str) -> Story:
        influential = verified or followers >= self.crisis.influential_followers
        return Story(root_id=root, brand=brand, started=at, keywords=keywords, author=author,
                     author_id=author_id, followers=followers, influential=influential,
                     root_negative=negative, text=text)

    def _crisis_on_mention(self, mention: Mention, clock: ReplyClock,
                           now: float) -> list[Alert]:
        post = mention.post
        # A pure repost's words are the post it quotes: volume, not a second opinion.
        score = mention.score if mention.needs_reply else None
        root = post.reposts_id or post.on_status_id
        if root is not None and (compact_id(root) in self.stories
                                 or compact_id(root) in self._posts):
            for story in self._stories_of(root):
                if story.brand == mention.brand:
                    return self._story_post(story, post, score, now)
        # An original post, or a repost/comment naming the brand of a post that does not
        # (a reposter's aside in someone else's story): a story of its own. The other
        # reposts of that post react to it, not to this aside.
        return self._root_post(mention, clock, score, now)

    def _root_post(self, mention: Mention, clock: ReplyClock, score: Score | None,
                   now: float) -> list[Alert]:
        """A post that starts a story: only harm and a burst of such posts can open an
        incident at once (a story test needs reposts). The story object is made for the
        test and dropped unless it opens an incident (the clock keeps what it needs)."""
        if score is None or not (is_negative(score) or score.danger):
            self._count(mention.brand, mention.post, score, True, mention.post.id)
            return []
        post = mention.post
        if score.danger:
            clock.flags |= _DANGER
        if mention.brand in self.open_incident:
            # No story opens a second incident for the brand (``_check_story``): the test
            # would drop it unmade, so it is not made. What the story's first post counts
            # (``_story_post``) is counted all the same. Most of a bad day's negative
            # mentions come while its incident is open (~17,000 on the mention-heavy day
            # of ``bench/replay_throughput.py``).
            self._count(mention.brand, post, score, True, post.id)
            return []
        author = post.author
        story = self._new_story(post.id, mention.brand, post.created_at, clock.keywords,
                                author.screen_name or author.id, author.id,
                                author.followers_count, author.verified,
                                is_negative(score), post.text)
        out = self._story_post(story, post, score, now)
        if story.incident_id is not None:
            clock.flags |= _OPENED
            self.stories.setdefault(compact_id(post.id), []).append(story)
        return out

    def _story_post(self, story: Story, post: Post, score: Score | None,
                    now: float) -> list[Alert]:
        negative = score is not None and is_negative(score)
        story.add(post.created_at, post.author.followers_count, score is not None, negative)
        if score is not None and score.danger and story.n_posts == 1:
            story.harm += 1
            story.harm_terms = harm_words(score.terms, score.reasons)
        self._count(story.brand, post, score, story.n_posts == 1, story.root_id)
        return self._check_story(story, now)

    def _count(self, brand: str, post: Post, score: Score | None, first: bool,
               root: str) -> None:
        """A post of one of ``brand``'s stories: its history, and an open incident's."""
        activity = self.activity[brand]
        t = post.created_at
        activity.seen(t)
        negative = score is not None and is_negative(score)
        activity.posts.add(t)
        if score is not None:
            activity.scored.add(t)
        if negative:
            activity.negatives.add(t)
            if first:  # a negative post that starts a story of its own
                activity.originals.add(t)
        if score is not None and score.danger and first:
            activity.danger.add(t)
            activity.harm.append((t, post.author.id, root))
            if len(activity.harm) > 256:
                del activity.harm[:128]
        inc_id = self.open_incident.get(brand)
        if inc_id is not None:
            inc = self.incidents[inc_id]
            inc.mentions += 1
            inc.negatives += int(negative)
            self.dirty_incidents[inc_id] = None
        self.stats.story_posts += 1
        if self.stats.story_posts % 4096 == 0:
            self._forget(now=t)

    def _check_story(self, story: Story, now: float) -> list[Alert]:
        """Does ``story`` (or the brand's separate posts) now make a crisis?"""
        brand = story.brand
        if brand in self.open_incident or story.incident_id is not None:
            return []
        activity = self.activity[brand]
        cfg = self.crisis
        found = None
        if story.harm:
            found = detect_danger(story, activity, now, cfg)
        if found is None:
            found = detect_story(story, activity, now, cfg)
        if found is None:
            found = detect_wordless_spread(story, activity, now, cfg)
        if found is None and story.n_posts == 1:
            found = detect_burst(activity, now, cfg)
            if found is not None:
                return self._open(brand, found, story.root_id, now, None)
        if found is None:
            return []
        out = self._open(brand, found, story.root_id, now, story)
        story.incident_id = self.open_incident.get(brand)
        return out

    def _forget(self, now: float) -> None:
        """Bounded memory on a long-running daemon: old times and quiet stories go."""
        cfg = self.crisis
        for activity in self.activity.values():
            activity.forget(now, cfg)
        horizon = now - cfg.baseline_span - cfg.window[1]
        open_ids = set(self.open_incident.values())
        for key in [k for k, stories in self.stories.items()
                    if all(s.last_at < horizon and s.incident_id not in open_ids
                           for s in stories)]:
            del self.stories[key]

    def _open(self, brand: str, found: Detection, post_id: str | None,
              now: float, story: Story | None) -> list[Alert]:
        cfg = self.crisis
        activity = self.activity[brand]
        # From facts, not from the time of detection, so live and replay give the same id.
        count = sum(1 for i in self.incidents.values() if i.brand == brand)
        seed = f"{brand}\x1f{post_id}\x1f{count}"
        inc_id = "inc-" + hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
        level = Level.LEADERSHIP if found.severity == "P1" else Level.SUPERVISOR
        inc = Incident(id=inc_id, brand=brand, opened_at=now, trigger=found.trigger,
                       trigger_post_id=post_id, severity=found.severity, level=level,
                       baseline_per_hour=activity.baseline_per_hour(now, cfg),
                       detail=found.detail,
                       story_id=story.root_id if story is not None else None)
        if story is not None:  # the story's posts so far are the incident's
            inc.mentions, inc.negatives = story.n_posts, story.n_negative
        else:
            inc.negatives = activity.originals.count(now - cfg.burst_window, now)
            inc.mentions = inc.negatives
        self.incidents[inc_id] = inc
        self.policies[inc_id] = cfg  # frozen with the incident: see ``policy``
        self.open_incident[brand] = inc_id
        self.dirty_incidents[inc_id] = None
        self.stats.incidents += 1
        for offset in cfg.checkpoints:
            self._at(now + offset, Step.CHECKPOINT, inc_id, offset)
        self._at(now + cfg.statement_due, Step.STATEMENT, inc_id)
        self._at(now + cfg.window[1], Step.CLOSE, inc_id)
        return [self._incident_alert(inc, AlertType.CRISIS_OPENED, now, level,
                                     wording.opened(inc, cfg, self.tz))]
