"""The pipeline, one way: event -> store (dedupe) -> match -> score -> engine -> router -> outbox.

The same object serves the live daemon, replay and a restart's rebuild; only the
caller's clock differs. ``handle`` stores before it acts; ``rebuild`` acts on what was
stored and returns only the alerts that never made it into the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from alerts.audit import AuditLog
from alerts.record import Alert, format_instant
from alerts.router import Router
from monitor.config import Config
from monitor.model import Action, Event, Mention, Post
from monitor.normalise import is_pure_repost
from monitor.store import CountsSeen, Store, StoredEvent
from rules.crisis import Incident
from rules.engine import EscalationEngine
from rules.lexicon import Lexicon
from rules.matching import BrandMatch, BrandMatcher
from rules.scoring import Scorer

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PipelineStats:
    """Counts for logs, metrics and the replay report."""

    posts: int = 0
    actions: int = 0
    duplicates: int = 0
    mentions: int = 0
    official: int = 0
    reposts_of_mentions: int = 0
    alerts: int = 0
    failed: int = 0
    """Events whose handling raised (a bug): rolled back, logged, skipped."""


def cutoff(event: StoredEvent, now: float) -> float:
    """How far the clock may run before ``event`` is handled.

    Up to the event's own time, not to ``now``: a batch fetched late may hold a mention
    and the reply that answered it in time, and that reply must count before the
    mention's (already past) deadlines fire. In replay the two are the same.
    """
    created = getattr(event, "created_at", None)
    return now if created is None else min(now, created)


def own_words(text: str) -> str:
    """The reposter's own words: what comes before the quoted ``//@user:`` chain."""
    cut = text.find("//@")
    return text if cut < 0 else text[:cut].strip()


class Pipeline:
    """Turns events into alerts, durably."""

    def __init__(self, config: Config, store: Store, scorer: Scorer, argument: Lexicon,
                 router: Router, channels: Sequence[str] = ()) -> None:
        self.config = config
        self.store = store
        self.scorer = scorer
        self.argument = argument
        self.router = router
        self.channels = tuple(channels)
        self.matcher = BrandMatcher(config.brands)
        self.engine = EscalationEngine(config.brands, config.sla, config.crisis, config.tz)
        self.stats = PipelineStats()
        self.audit = AuditLog(store.db)
        # Brand matches and sentiment worked out ahead by ``prepare``, by post id.
        self._matched: dict[str, tuple[list[BrandMatch], float | None]] = {}
        self.owns: Callable[[str], bool] = lambda _brand: True
        """Whether this instance records (and so sends) a brand's alerts: always, unless
        several instances share the work (``monitor.cluster``: the brand's lease holder)."""

    def prepare(self, events: Sequence[StoredEvent]) -> None:
        """Match and score the posts among ``events`` ahead of handling them, as one batch.

        Optional: ``handle`` works without it. Sentiment scoring costs ~30 µs a text in a
        batch but ~500 µs alone (numpy call overhead), so callers holding a batch of events
        (replay, a fetched page) call this first. Matching and scoring are pure functions
        of the post, so the outcome is exactly that of handling the events one by one.
        """
        self._matched.clear()
        texts: list[str] = []
        keys: list[str] = []
        for event in events:
            if isinstance(event, Post) and event.id not in self._matched:
                matches = self.matcher.match(event.text, event.author.id)
                self._matched[event.id] = (matches, None)
                if matches:
                    texts.append(event.text)
                    keys.append(event.id)
        if texts:
            for key, p in zip(keys, self.scorer.score_many(texts), strict=True):
                self._matched[key] = (self._matched[key][0], p)

    # ------------------------------------------------------------------ entry points
    def handle(self, event: Event, now: float) -> list[Alert]:
        """Store ``event`` (once: a repeat is dropped) and act on it at ``now``.

        Deadlines due strictly before the event's time fire first, so an answer posted
        exactly at a deadline is in time; the caller's next ``tick`` fires the rest.

        One bad event never takes the others down: if handling it fails, its writes are
        rolled back (a savepoint), it is logged and counted, and the batch goes on.
        """
        due = self._record(self.engine.advance(cutoff(event, now), inclusive=False))
        # Every log line about this post carries its id and (once matched) its brand.
        with structlog.contextvars.bound_contextvars(post_id=event.id, brand=None):
            try:
                with self.store.savepoint():
                    return due + self._handle(event, now)
            except Exception:
                self.stats.failed += 1
                log.exception("event skipped: handling it failed", event_id=event.id,
                              source=event.source)
                return due

    def apply_stored(self, event: StoredEvent, seen_at: float) -> list[Alert]:
        """Act on an event another instance stored (it is in the store already), as
        ``rebuild`` would: at the time it was seen. Returns the alerts recorded."""
        due = self._record(self.engine.advance(cutoff(event, seen_at), inclusive=False))
        post_id = getattr(event, "id", getattr(event, "post_id", None))
        with structlog.contextvars.bound_contextvars(post_id=post_id, brand=None):
            try:
                with self.store.savepoint():
                    return due + self._record(self._process(event, seen_at))
            except Exception:
                self.stats.failed += 1
                log.exception("stored event skipped: handling it failed", event_id=post_id)
                return due

    def reset_engine(self) -> None:
        """A fresh engine (same brands, also those a reload added), for a full rebuild."""
        old = self.engine
        self.engine = EscalationEngine(list(old.brands.values()), self.config.sla,
                                       self.config.crisis, self.config.tz)

    def _handle(self, event: Event, now: float) -> list[Alert]:
        if not self.store.add_event(event, now):
            self.stats.duplicates += 1
            known = self.engine.known_reposts(event.id) if isinstance(event, Post) else -1
            if isinstance(event, Post) and 0 <= known < event.reposts_count:
                update = CountsSeen(event.id, event.reposts_count)
                if self.store.add_event(update, now):
                    return self._record(self.engine.on_counts(event.id, event.reposts_count, now))
            return []
        return self._record(self._process(event, now))

    def tick(self, now: float) -> list[Alert]:
        """Fire every deadline due up to and including ``now``."""
        return self._record(self.engine.advance(now, inclusive=True))

    def rebuild(self) -> list[Alert]:
        """Rebuild engine state from the store after a restart.

        Returns the alerts that were due during the stored history but never recorded
        (a crash between deciding and recording): they still need sending.
        """
        known = self.store.alert_ids()
        raw: list[Alert] = []
        n = 0
        for seen_at, event in self.store.events():
            due = self.engine.advance(cutoff(event, seen_at), inclusive=False)
            post_id = getattr(event, "id", getattr(event, "post_id", "?"))
            with structlog.contextvars.bound_contextvars(post_id=post_id, brand=None):
                try:
                    due += self._process(event, seen_at)
                except Exception:  # as in handle(): one bad event must not stop the start
                    self.stats.failed += 1
                    log.exception("stored event skipped in rebuild", event_id=post_id)
            raw.extend(a for a in due if a.id not in known)  # most were sent long ago
            n += 1
        # The projections were committed with their events; only new alerts need writing.
        self.engine.dirty_mentions.clear()
        self.engine.dirty_incidents.clear()
        unsent = self._record(raw)
        log.info("state rebuilt", events=n, mentions=len(self.engine.clocks),
                 pending_deadlines=self.engine.pending(), unsent_alerts=len(unsent))
        return unsent

    # ------------------------------------------------------------------ stages
    def _process(self, event: StoredEvent, now: float) -> list[Alert]:
        if isinstance(event, Action):
            self.stats.actions += 1
            self.audit.action(event, now)  # once per action id, so a rebuild adds nothing
            return self.engine.on_action(event, now)
        if isinstance(event, CountsSeen):
            return self.engine.on_counts(event.post_id, event.reposts_count, now)
        return self._post(event, now)

    def _post(self, post: Post, now: float) -> list[Alert]:
        self.stats.posts += 1
        out: list[Alert] = []
        for brand in self.matcher.official_brands(post.author.id):
            self.stats.official += 1
            terms = tuple(t.term for t in self.argument.find(post.text)) if post.targets else ()
            out.extend(self.engine.on_official(post, brand, terms, now))
        ready = self._matched.pop(post.id, None)
        if ready is None:
            matches, p = self.matcher.match(post.text, post.author.id), None
        else:
            matches, p = ready
        if matches:
            structlog.contextvars.bind_contextvars(brand=",".join(m.brand for m in matches))
            score = self.scorer.score(post, p)
            pure = is_pure_repost(post) or (post.reposts_id is not None
                                            and own_words(post.text) in ("", "转发微博"))
            for match in matches:
                self.stats.mentions += 1
                mention = Mention(post=post, brand=match.brand, score=score,
                                  needs_reply=not pure, keywords=match.keywords)
                out.extend(self.engine.on_mention(mention, now))
        elif post.reposts_id and self.engine.tracks(post.reposts_id):
            self.stats.reposts_of_mentions += 1
            out.extend(self.engine.on_reposts(post.reposts_id, 1, post.created_at, now))
        return out

    def _record(self, raw: list[Alert]) -> list[Alert]:
        """Address the alerts, keep the new ones in the outbox, refresh projections."""
        new: list[Alert] = []
        for alert in raw:  # each alert gets a delivery only on the channels it is routed to
            if not self.owns(alert.brand):
                continue  # another instance holds this brand's lease and pages for it
            addressed, channels = self.router.plan(alert, self.channels)
            new.extend(self.store.add_alerts([addressed], channels))
        self.stats.alerts += len(new)
        self._flush_projections()
        return new

    def _flush_projections(self) -> None:
        engine = self.engine
        for key in engine.dirty_mentions:
            clock = engine.clocks.get(key)
            if clock is None:
                continue
            m = clock.mention
            self.store.save_mention({
                "key": key, "brand": m.brand, "post_id": m.post.id,
                "created_at": m.post.created_at, "seen_at": clock.seen_at,
                "author": m.post.author.screen_name or m.post.author.id,
                "followers": m.post.author.followers_count, "text": m.post.text,
                "sentiment": m.score.sentiment, "negative": int(m.score.negative),
                "severity": m.score.severity,
                "reasons": json.dumps(m.score.reasons, ensure_ascii=False),
                "needs_reply": int(m.needs_reply), "replied_at": clock.replied_at,
                "replied_by": clock.replied_by, "acked_by": clock.acked_by,
                "private_resolve_at": clock.private_resolve_at,
                "incident_id": clock.incident_id,
            })
        for inc_id in engine.dirty_incidents:
            inc = engine.incidents[inc_id]
            self.store.save_incident(inc.id, inc.brand, json.dumps(
                incident_record(inc, self.config), ensure_ascii=False))
        engine.dirty_mentions.clear()
        engine.dirty_incidents.clear()


def incident_record(inc: Incident, config: Config) -> dict[str, object]:
    """An incident as a JSON-ready dict (incidents.jsonl, the store, the dashboard)."""
    tz = config.tz

    def t(x: float | None) -> str | None:
        return None if x is None else format_instant(x, tz)

    return {
        "id": inc.id, "brand": inc.brand, "opened_at": t(inc.opened_at),
        "trigger": str(inc.trigger), "trigger_post_id": inc.trigger_post_id,
        "severity": inc.severity, "level": inc.level, "detail": inc.detail,
        "baseline_per_hour": round(inc.baseline_per_hour, 3),
        "statement_due": t(inc.opened_at + config.crisis.statement_due),
        "statement_at": t(inc.statement_at), "statement_post_id": inc.statement_post_id,
        "checkpoints": [t(inc.opened_at + c) for c in config.crisis.checkpoints],
        "window_end": t(inc.opened_at + config.crisis.window[1]),
        "closed_at": t(inc.closed_at), "mentions": inc.mentions, "negatives": inc.negatives,
        "acked_by": inc.acked_by, "resolved_by": inc.resolved_by,
    }
