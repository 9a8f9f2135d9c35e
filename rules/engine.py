"""The escalation engine: plain state plus deadlines, advanced by whoever holds the clock.

It never reads the time and does no I/O. Each ``on_*`` call takes the current time and
returns the alerts that fall due; ``advance(until)`` fires deadlines in time order (ties
in the order they were set), re-reading the state at each, so a reply that came in
before a deadline quietly cancels it. The same input therefore gives the same alerts,
live or in replay, and a restart rebuilds the same state by feeding stored events again.

Deadlines (contract section 3), per mention: warn -> breach -> escalated (only the next
one is queued: one heap entry per clock keeps a million open mentions cheap), and the
public follow-up after a private resolve; per incident: checkpoints, the statement
deadline and the close check.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from enum import IntEnum

from alerts.record import Alert, AlertType, Level, alert_id
from monitor.config import BrandConfig, CrisisConfig, SlaConfig
from monitor.model import Action, ActionKind, Mention, Post, PostKind
from monitor.settings import format_duration
from rules import wording
from rules.crisis import (
    BrandActivity,
    Detection,
    Incident,
    Times,
    Trigger,
    detect_burst,
    detect_danger,
    detect_spread,
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


_REPLY_STEPS = {
    Step.WARN: (AlertType.REPLY_WARNING, Level.DUTY),
    Step.BREACH: (AlertType.REPLY_BREACH, Level.SUPERVISOR),
    Step.ESCALATE: (AlertType.REPLY_ESCALATED, Level.LEADERSHIP),
}


@dataclass(slots=True)
class ReplyClock:
    """The 5-minute rule for one mention: when it is due, and what has happened."""

    mention: Mention
    seen_at: float
    replied_at: float | None = None
    replied_by: str | None = None
    last_public_reply_at: float | None = None
    acked_by: str | None = None
    private_resolve_at: float | None = None
    reposts: Times | None = None
    """Reposts seen of this mention: does it spread? Created at the first repost (most
    mentions are never reposted; an empty ``Times`` per open mention costs ~160 bytes)."""
    tracks_reposts: bool = False
    """True for an original status: only those count reposts (comments and reposts don't)."""
    key: str = ""
    """``mention.key``, built once and shared by every map that names this clock."""
    last_reposts_count: int = 0
    incident_id: str | None = None
    """The incident open for the brand when this mention came in (or that it opened)."""

    @property
    def brand(self) -> str:
        return self.mention.brand

    @property
    def post(self) -> Post:
        return self.mention.post

    @property
    def is_open(self) -> bool:
        return self.mention.needs_reply and self.replied_at is None


@dataclass(order=True, slots=True)
class Deadline:
    due: float
    seq: int
    step: Step = field(compare=False)
    subject: str = field(compare=False)
    """Mention key or incident id."""
    arg: float = field(compare=False, default=0.0)
    """Checkpoint offset, or the resolve time a follow-up belongs to."""


@dataclass(slots=True)
class EngineStats:
    mentions: int = 0
    replies: int = 0
    unknown_targets: int = 0
    incidents: int = 0


class EscalationEngine:
    """Reply clocks and crisis incidents for every configured brand."""

    def __init__(self, brands: Sequence[BrandConfig], sla: SlaConfig, crisis: CrisisConfig,
                 tz: tzinfo) -> None:
        self.sla = sla
        self.crisis = crisis
        self.tz = tz
        self.brands = {b.name: b for b in brands}
        self.clocks: dict[str, ReplyClock] = {}
        self.by_post: dict[str, list[str]] = {}
        self.incidents: dict[str, Incident] = {}
        self.open_incident: dict[str, str] = {}
        self.activity: dict[str, BrandActivity] = {name: BrandActivity() for name in self.brands}
        self.subjects: dict[str, str] = {}
        """Alert id -> mention key or incident id, so an ack can name an alert."""
        self.early_replies: dict[tuple[str, str], float] = {}
        self.stats = EngineStats()
        self.dirty_mentions: set[str] = set()
        self.dirty_incidents: set[str] = set()
        """Changed since the caller last took them (for the store's projections)."""
        self._heap: list[Deadline] = []
        self._seq = 0

    # ----------------------------------------------------------------- deadlines
    def next_due(self) -> float | None:
        """When the next deadline falls, or None if nothing is pending."""
        return self._heap[0].due if self._heap else None

    def pending(self) -> int:
        return len(self._heap)

    def _at(self, due: float, step: Step, subject: str, arg: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, Deadline(due, self._seq, step, subject, arg))

    def advance(self, until: float, inclusive: bool = True) -> list[Alert]:
        """Fire every deadline due before ``until`` (or at it, if ``inclusive``), in order.

        Each firing may queue the next step, which fires in the same call if it is due too.
        """
        out: list[Alert] = []
        heap = self._heap
        while heap and (heap[0].due < until or (inclusive and heap[0].due == until)):
            d = heapq.heappop(heap)
            out.extend(self._fire(d))
        return out

    def _fire(self, d: Deadline) -> list[Alert]:
        if d.step in _REPLY_STEPS:
            return self._fire_reply(d)
        if d.step is Step.FOLLOWUP:
            return self._fire_followup(d)
        inc = self.incidents.get(d.subject)
        if inc is None or not inc.is_open:
            return []
        if d.step is Step.CHECKPOINT:
            return [self._incident_alert(inc, AlertType.CRISIS_CHECKPOINT, d.due, Level.SUPERVISOR,
                                         wording.checkpoint(inc, d.arg, self._recent(inc, d.due),
                                                            self.crisis, self.tz),
                                         step=format_duration(d.arg))]
        if d.step is Step.STATEMENT:
            if inc.statement_at is not None and inc.statement_at <= d.due:
                return []
            return [self._incident_alert(inc, AlertType.CRISIS_ESCALATED, d.due, Level.LEADERSHIP,
                                         wording.no_statement(inc, self.crisis, self.tz))]
        return self._fire_close(inc, d.due)

    def _fire_reply(self, d: Deadline) -> list[Alert]:
        clock = self.clocks.get(d.subject)
        if clock is None or not clock.is_open:
            return []
        alert_type, level = _REPLY_STEPS[d.step]
        nxt = {Step.WARN: (Step.BREACH, self.sla.reply_within),
               Step.BREACH: (Step.ESCALATE, self.sla.escalate_after)}.get(d.step)
        if nxt is not None:
            self._at(clock.post.created_at + nxt[1], nxt[0], d.subject)
        return [self._mention_alert(clock, alert_type, d.due, level,
                                    wording.reply_overdue(clock, alert_type, self.sla, self.tz))]

    def _fire_followup(self, d: Deadline) -> list[Alert]:
        clock = self.clocks.get(d.subject)
        if clock is None or clock.private_resolve_at != d.arg:
            return []
        if clock.last_public_reply_at is not None and clock.last_public_reply_at >= d.arg:
            return []
        return [self._mention_alert(clock, AlertType.RESOLUTION_NOT_PUBLIC, d.due, Level.SUPERVISOR,
                                    wording.not_public(clock, self.sla, self.tz),
                                    extra=repr(d.arg))]

    def _fire_close(self, inc: Incident, now: float) -> list[Alert]:
        recent = self._recent(inc, now)
        if recent > max(self.crisis.close_factor * inc.baseline_per_hour,
                        self.crisis.baseline_floor_per_hour) or self._still_spreading(inc, now):
            self._at(now + self.crisis.close_check_every, Step.CLOSE, inc.id)
            return []
        inc.closed_at = now
        self.open_incident.pop(inc.brand, None)
        self.dirty_incidents.add(inc.id)
        return [self._incident_alert(inc, AlertType.CRISIS_CLOSED, now, Level.DUTY,
                                     wording.closed(inc, recent, self.tz))]

    def _still_spreading(self, inc: Incident, now: float) -> bool:
        """Is the post that opened a ``spread`` incident still spreading as fast as when
        it opened it? Then the story is not over, whatever the negative rate says: closing
        would only reopen a second incident for the same post at its next repost."""
        if inc.trigger is not Trigger.SPREAD or inc.trigger_post_id is None:
            return False
        for key in self.by_post.get(inc.trigger_post_id, ()):
            clock = self.clocks[key]
            if clock.brand != inc.brand or clock.reposts is None:
                continue
            author = clock.post.author
            influential = author.verified or author.followers_count >= \
                self.crisis.influential_followers
            if detect_spread(clock.reposts, now, self.crisis, influential,
                             author.followers_count):
                return True
        return False

    def _recent(self, inc: Incident, now: float) -> int:
        """Negative mentions of the incident's brand in the hour up to ``now``."""
        return self.activity[inc.brand].negatives.count(now - HOUR, now)

    # ----------------------------------------------------------------- alerts
    def _mention_alert(self, clock: ReplyClock, alert_type: AlertType, at: float, level: int,
                       words: tuple[str, str], extra: str = "") -> Alert:
        parts = (str(alert_type), clock.brand, clock.post.id) + ((extra,) if extra else ())
        aid = alert_id(*parts)
        self.subjects[aid] = clock.key or clock.mention.key
        inc_id = self.open_incident.get(clock.brand)
        return Alert(id=aid, type=alert_type, at=at, brand=clock.brand, level=level,
                     severity=clock.mention.score.severity, title=words[0], text=words[1],
                     post_id=clock.post.id, incident_id=inc_id)

    def _incident_alert(self, inc: Incident, alert_type: AlertType, at: float, level: int,
                        words: tuple[str, str], step: str = "") -> Alert:
        aid = alert_id(str(alert_type), inc.id, step)
        self.subjects[aid] = inc.id
        return Alert(id=aid, type=alert_type, at=at, brand=inc.brand, level=level,
                     severity=inc.severity, title=words[0], text=words[1],
                     post_id=inc.trigger_post_id, incident_id=inc.id)

    # ----------------------------------------------------------------- inputs
    def tracks(self, post_id: str) -> bool:
        """True if this post id is a mention the engine knows."""
        return post_id in self.by_post

    def on_mention(self, mention: Mention, now: float) -> list[Alert]:
        """A brand mention was seen: start its reply clock and look for a crisis."""
        key = mention.key
        if key in self.clocks:
            return []
        post = mention.post
        clock = ReplyClock(mention=mention, seen_at=now, key=key)
        if post.kind is PostKind.STATUS and not post.reposts_id:
            clock.tracks_reposts = True
            clock.last_reposts_count = post.reposts_count
        self.clocks[key] = clock
        self.by_post.setdefault(post.id, []).append(key)
        self.stats.mentions += 1
        early = self.early_replies.pop((mention.brand, post.id), None)
        if early is not None:
            self._mark_replied(clock, early, "official")
        out: list[Alert] = []
        if mention.needs_reply:
            out.append(self._mention_alert(clock, AlertType.MENTION_NEW, now, Level.DUTY,
                                           wording.new_mention(clock, self.sla, self.tz)))
            if clock.replied_at is None:
                self._at(post.created_at + self.sla.warn_at, Step.WARN, key)
        out.extend(self._crisis_on_mention(mention, now))
        clock.incident_id = self.open_incident.get(mention.brand)
        self.dirty_mentions.add(key)
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
            keys = [k for k in self.by_post.get(target, ()) if self.clocks[k].brand == brand]
            for k in keys:
                self._mark_replied(self.clocks[k], post.created_at, by)
                replied.append(self.clocks[k])
            if not keys:
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
                self.dirty_incidents.add(inc_id)
        if argument_terms and targets:
            subject = replied[0] if replied else None
            out.append(self._argument_alert(post, brand, tuple(argument_terms), subject, now))
        return out

    def _argument_alert(self, post: Post, brand: str, terms: tuple[str, ...],
                        clock: ReplyClock | None, now: float) -> Alert:
        target = clock.post.id if clock else post.targets[0]
        aid = alert_id(str(AlertType.REPLY_ARGUMENT), brand, post.id)
        if clock is not None:
            self.subjects[aid] = clock.key or clock.mention.key
        title, text = wording.argument(post, brand, terms, clock, self.tz)
        return Alert(id=aid, type=AlertType.REPLY_ARGUMENT, at=now, brand=brand,
                     level=Level.SUPERVISOR, severity="P2", title=title, text=text,
                     post_id=target, incident_id=self.open_incident.get(brand))

    def _mark_replied(self, clock: ReplyClock, at: float, by: str) -> None:
        self.dirty_mentions.add(clock.key or clock.mention.key)
        if clock.replied_at is None:
            clock.replied_at = at
            clock.replied_by = by
        if clock.last_public_reply_at is None or at > clock.last_public_reply_at:
            clock.last_public_reply_at = at

    def on_reposts(self, target: str, n: int, at: float, now: float) -> list[Alert]:
        """``n`` reposts of ``target`` at ``at`` (a repost seen, or a counter's growth)."""
        out: list[Alert] = []
        for key in self.by_post.get(target, ()):
            clock = self.clocks[key]
            if not clock.tracks_reposts:
                continue
            reposts = clock.reposts
            if reposts is None:
                reposts = clock.reposts = Times()
            reposts.add(at, n)
            if not clock.mention.score.negative:
                continue
            brand = clock.brand
            if brand in self.open_incident or self._opened_one(clock):
                continue
            author = clock.post.author
            influential = author.verified or author.followers_count >= \
                self.crisis.influential_followers
            found = detect_spread(reposts, now, self.crisis, influential,
                                  author.followers_count)
            if found:
                out.extend(self._open(brand, found, clock.post.id, now))
                clock.incident_id = self.open_incident.get(brand)
                self.dirty_mentions.add(key)
        return out

    def _opened_one(self, clock: ReplyClock) -> bool:
        """Did this post already open an incident? One story, one incident: its later
        waves are that story's, not a new crisis (new negative posts can still burst)."""
        inc = self.incidents.get(clock.incident_id) if clock.incident_id else None
        return inc is not None and inc.trigger_post_id == clock.post.id

    def known_reposts(self, post_id: str) -> int:
        """The highest repost counter seen for a tracked status (-1 if not tracked)."""
        counts = [self.clocks[k].last_reposts_count for k in self.by_post.get(post_id, ())
                  if self.clocks[k].tracks_reposts]
        return max(counts, default=-1)

    def on_counts(self, post_id: str, reposts_count: int, now: float) -> list[Alert]:
        """A known post seen again: its repost counter's growth is spread too."""
        out: list[Alert] = []
        for key in self.by_post.get(post_id, ()):
            clock = self.clocks[key]
            growth = reposts_count - clock.last_reposts_count
            if not clock.tracks_reposts or growth <= 0:
                continue
            clock.last_reposts_count = reposts_count
            out.extend(self.on_reposts(post_id, growth, now, now))
            break
        return out

    def on_action(self, action: Action, now: float) -> list[Alert]:
        """A responder's ack or resolve, naming an alert, a mention (post id) or an incident."""
        subject = self.subjects.get(action.target, action.target)
        if subject in self.incidents:
            inc = self.incidents[subject]
            if action.action is ActionKind.ACK:
                inc.acked_by = inc.acked_by or action.by
            else:
                inc.resolved_by = action.by
            self.dirty_incidents.add(inc.id)
            return []
        keys = [subject] if subject in self.clocks else list(self.by_post.get(subject, ()))
        if not keys:
            self.stats.unknown_targets += 1
            return []
        for key in keys:
            clock = self.clocks[key]
            self.dirty_mentions.add(key)
            if action.action is ActionKind.ACK:
                clock.acked_by = clock.acked_by or action.by  # stops repeats, not the clock
            elif action.public:
                # The team records a public answer (e.g. from an account we don't watch).
                self._mark_replied(clock, action.created_at, action.by)
            elif clock.private_resolve_at is None:
                clock.private_resolve_at = action.created_at
                self._at(action.created_at + self.sla.public_followup_within, Step.FOLLOWUP,
                         key, action.created_at)
        return []

    # ----------------------------------------------------------------- crisis
    def _crisis_on_mention(self, mention: Mention, now: float) -> list[Alert]:
        brand = mention.brand
        activity = self.activity[brand]
        activity.seen(mention.post.created_at)
        inc_id = self.open_incident.get(brand)
        if inc_id is not None:
            inc = self.incidents[inc_id]
            inc.mentions += 1
            inc.negatives += int(mention.score.negative)
            self.dirty_incidents.add(inc_id)
        if not mention.score.negative:
            return []
        t = mention.post.created_at
        activity.negatives.add(t)
        if mention.score.danger:
            activity.danger.add(t)
        if self.stats.mentions % 4096 == 0:
            activity.forget(now, self.crisis)
        if inc_id is not None:
            return []
        found = detect_burst(activity, now, self.crisis)
        if found is None and mention.score.danger:
            found = detect_danger(activity, now, self.crisis, mention.score.terms)
        if found is None:
            return []
        return self._open(brand, found, mention.post.id, now)

    def _open(self, brand: str, found: Detection, post_id: str | None,
              now: float) -> list[Alert]:
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
                       detail=found.detail)
        inc.negatives = activity.negatives.count(now - cfg.burst_window, now)
        inc.mentions = inc.negatives
        if found.trigger is Trigger.SPREAD:
            inc.mentions += 1
        self.incidents[inc_id] = inc
        self.open_incident[brand] = inc_id
        self.dirty_incidents.add(inc_id)
        self.stats.incidents += 1
        for offset in cfg.checkpoints:
            self._at(now + offset, Step.CHECKPOINT, inc_id, offset)
        self._at(now + cfg.statement_due, Step.STATEMENT, inc_id)
        self._at(now + cfg.window[1], Step.CLOSE, inc_id)
        return [self._incident_alert(inc, AlertType.CRISIS_OPENED, now, level,
                                     wording.opened(inc, cfg, self.tz))]
