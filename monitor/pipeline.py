"""The pipeline, one way: event -> store (dedupe) -> match -> score -> engine -> router -> outbox.

The same object serves the live daemon, replay and a restart's rebuild; only the
caller's clock differs. ``handle`` stores before it acts; ``rebuild`` acts on what was
stored and returns only the alerts that never made it into the store.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from alerts.ack import base_alert_id
from alerts.audit import AuditLog
from alerts.router import Router
from monitor import decision as decisions
from monitor.config import Config
from monitor.decision import NOTHING, BrandDecision, Decision
from monitor.mention_record import stored_rows
from monitor.normalise import is_pure_repost
from monitor.store import CountsSeen, Mark, PlainPost, Store, StoredEvent
from monitor.telemetry import enter_event, event_brand, leave_event
from rules.argument import ArgumentGuard
from rules.crisis import BrandActivity, Incident
from rules.engine import EscalationEngine, SnapshotError
from rules.matching import BrandMatch, BrandMatcher
from rules.policy import CrisisConfig
from rules.records import Action, Alert, Event, Mention, Post, Score, format_instant
from rules.scoring import (
    Assessment,
    Scorer,
    assess_posts,
    has_own_words,
    own_words,
    replace_text,
)
from rules.sentiment import polarities

log = structlog.get_logger(__name__)

_UNPREPARED: Any = object()
"""``Pipeline._matched``'s answer for a post ``prepare`` did not see."""


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
    stale: int = 0
    """Posts older than the retention's cutoff, seen (again): not handled."""


def cutoff(event: StoredEvent, now: float) -> float:
    """How far the clock may run before ``event`` is handled.

    Up to the event's own time, not to ``now``: a batch fetched late may hold a mention
    and the reply that answered it in time, and that reply must count before the
    mention's (already past) deadlines fire. In replay the two are the same.
    """
    created = getattr(event, "created_at", None)
    return now if created is None else min(now, created)


__all__ = ["Pipeline", "PipelineStats", "cutoff", "early_decisions", "incident_record",
           "mention_decision", "official_decision", "own_words"]


def every_brand(_brand: str) -> bool:
    """``Pipeline.owns`` of an instance that works alone: it records every brand's alerts."""
    return True


class _JsonCache(dict[tuple[str, ...], str]):
    """``json.dumps(t, ensure_ascii=False)`` of tuples, each worked out once; called."""

    def __call__(self, t: tuple[str, ...]) -> str:
        text = self.get(t)
        if text is None:
            if len(self) >= 10_000:  # the tuples are shared, so few; bounded all the same
                return json.dumps(t, ensure_ascii=False)
            text = self[t] = json.dumps(t, ensure_ascii=False)
        return text


class _KnownStories:
    """The engine's story roots (its stories and its mentions), as ``assess_posts`` asks
    about them; the mentions found in the batch itself ``assess_posts`` adds on its own."""

    def __init__(self, engine: EscalationEngine) -> None:
        self._engine = engine

    def __contains__(self, post_id: object) -> bool:
        return isinstance(post_id, str) and self._engine.knows_story(post_id)

    def add(self, post_id: str) -> None:
        """The engine learns of a story when it handles the post, not ahead of it."""


class Pipeline:
    """Turns events into alerts, durably."""

    def __init__(self, config: Config, store: Store, scorer: Scorer | None,
                 argument: ArgumentGuard,
                 router: Router, channels: Sequence[str] = (), *,
                 make_scorer: Callable[[], Scorer] | None = None) -> None:
        """``scorer`` None: built by ``make_scorer`` the first time a post needs scoring
        here (the replay, whose feed reader matches and scores the posts in its own
        process, so that the models are loaded once, there)."""
        if scorer is None and make_scorer is None:
            raise TypeError("Pipeline needs a scorer or make_scorer")
        self.config = config
        self.store = store
        self._scorer = scorer
        self._make_scorer = make_scorer
        self.argument = argument
        self.router = router
        self.channels = tuple(channels)
        self.matcher = BrandMatcher(config.brands)
        self.engine = EscalationEngine(config.brands, config.sla, config.crisis, config.tz)
        self.stats = PipelineStats()
        self.audit = AuditLog(store)
        store.on_flush.append(self._flush_projections)
        # Brand matches and scores worked out ahead by ``prepare``, by post id.
        self._matched: dict[str, Assessment | None] = {}
        # Decisions the replay's feed reader made ahead, encoded, by post id (``prepare``).
        self._decided: dict[str, bytes] | None = None
        # The JSON of each reasons tuple, for the mention rows: the engine shares one copy
        # of each distinct tuple, and there are few of them.
        self._reasons_json = _JsonCache()
        self.forgotten_before = store.pruned_before()
        """The retention's cutoff: a post created before it may have been seen and pruned
        since, so it is not handled (``monitor.daemon`` moves it forward)."""
        self.restored_from = 0
        """``events.seq`` of the snapshot the last ``rebuild`` started from (0: none)."""
        self.replayed = 0
        """Events the last ``rebuild`` fed into the engine (those after the snapshot)."""
        self.config_changed = False
        """Whether the last ``rebuild``'s snapshot was taken under another reply rule or
        other crisis settings than the config's."""
        self.owns: Callable[[str], bool] = every_brand
        """Whether this instance records (and so sends) a brand's alerts: always, unless
        several instances share the work (``monitor.cluster``: the brand's lease holder)."""

    @property
    def scorer(self) -> Scorer:
        """The sentiment and crisis scorer (built on first use, see ``__init__``)."""
        if self._scorer is None:
            assert self._make_scorer is not None
            self._scorer = self._make_scorer()
        return self._scorer

    @scorer.setter
    def scorer(self, scorer: Scorer) -> None:  # a config reload swaps it
        self._scorer = scorer

    def prepare(self, events: Sequence[StoredEvent | PlainPost],
                assessed: Mapping[str, Assessment] | None = None,
                decided: dict[str, bytes] | None = None, *, decide: bool = False) -> None:
        """Match and score the posts among ``events`` ahead of handling them, as one batch.

        Optional: ``handle`` works without it. Sentiment scoring costs ~30 µs a text in a
        batch but ~500 µs alone (numpy call overhead), so callers holding a batch of events
        (replay, a fetched page) call this first. Matching and scoring are pure functions
        of the post (``assess_posts``), so the outcome is exactly that of handling the
        events one by one. ``assessed``: that work done already (by the replay's feed
        reader, in its own process) for these posts, or more; a post not in it names no
        brand. ``decided``: what that reader could decide of these posts ahead, encoded
        (``early_decisions``), by post id; it takes precedence over ``assessed``, and a
        post not in it was written by no official account (empty bytes: one that was,
        left to this process). ``decide`` (with neither given: the live daemon's batch):
        make ``decided`` here as the replay's reader does (``early_decisions``), so a plain
        post is only stored (see ``handle``); ``forget_prepared`` once the batch is handled.
        """
        self.store.expect(events)  # one dedupe query for the lot, not one per event
        posts = [e for e in events if isinstance(e, Post)]
        if assessed is None:
            assessed = assess_posts(posts, self.matcher, self.scorer,
                                    _KnownStories(self.engine))
            if decide and decided is None:
                decided = early_decisions(posts, assessed, self.matcher, self._official)
        self._matched = {post.id: assessed.get(post.id) for post in posts}
        self._decided = decided

    def forget_prepared(self) -> None:
        """Drop what ``prepare`` worked out ahead: a post handled later without its own
        ``prepare`` (a peer's event fed in, an old stored one) is decided from scratch."""
        self._matched = {}
        self._decided = None

    def _official(self, post: Post) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``official_decision`` of ``post`` with this pipeline's matcher and guard."""
        return official_decision(post, self.matcher, self.argument, self._tone)

    # ------------------------------------------------------------------ entry points
    def handle(self, event: Event | PlainPost, now: float) -> list[Alert]:
        """Store ``event`` (once: a repeat is dropped) and act on it at ``now``.

        Deadlines due strictly before the event's time fire first, so an answer posted
        exactly at a deadline is in time; the caller's next ``tick`` fires the rest.

        One bad event never takes the others down: if handling it fails, the rows it
        added are dropped (``Store.mark``/``undo``), it is logged and counted, and the
        batch goes on.
        """
        store = self.store
        if not store.in_transaction:  # a batch of one
            with store.transaction():
                return self.handle(event, now)
        created = event.created_at  # (``cutoff``: a post or an action has its time)
        due = self._record(self.engine.advance(created if created < now else now,
                                               inclusive=False))
        if type(event) is PlainPost:
            return self._plain(event, now, due)
        return self._whole(event, now, due)

    def _plain(self, post: PlainPost, now: float, due: list[Alert]) -> list[Alert]:
        """``handle`` a post the replay's reader found plain: only stored, as a plain
        ``Post`` is (see ``_whole``). Stored before, or older than the store remembers:
        the whole post, handled as any."""
        store = self.store
        if post.created_at >= self.forgotten_before:
            try:
                if store.add_plain(post, now):
                    self.stats.posts += 1
                    return due
            except Exception:
                return self._store_failed(store.pending_post(post.id), due)
        return self._whole(store.pending_post(post.id), now, due)

    def _whole(self, event: Event, now: float, due: list[Alert]) -> list[Alert]:
        """``handle`` past the deadlines due before ``event`` (``due``)."""
        store = self.store
        created = event.created_at
        if type(event) is Post and self._decided is not None and not (
                event.reposts_id or event.on_status_id or event.reply_to_id) \
                and event.id not in self._decided \
                and self._matched.get(event.id, _UNPREPARED) is None \
                and created >= self.forgotten_before:
            # A plain post, as ``prepare`` found it: it names no brand, no official
            # account wrote it (the reader lists those in ``decided``), and it answers no
            # post, so it is in no story. Deciding it comes to ``NOTHING`` and the engine
            # has nothing to do with it: it is only stored (two thirds of a mention-heavy
            # day's posts, nearly all of a light day's), without the layers below, each
            # of which would only find that out again (~3 us a post).
            try:
                if store.add_event(event, now):  # (its row is the last thing it adds)
                    self._matched.pop(event.id, None)
                    self.stats.posts += 1
                    return due
            except Exception:
                return self._store_failed(event, due)
            return self._step(event, now, due, self._duplicate)
        return self._step(event, now, due, self._handle)

    def _store_failed(self, post: Post, due: list[Alert]) -> list[Alert]:
        """Storing plain ``post`` raised (a bug): logged and counted as a failed event (call
        while the error is handled); ``due``, the deadlines its time fired."""
        token = enter_event(post.id)  # (the log line carries the post's id)
        try:
            self._failed(post, None)
        finally:
            leave_event(token)
        return due

    def _step(self, event: Event, now: float, due: list[Alert],
              act: Callable[[Event, float], list[Alert]]) -> list[Alert]:
        """``act`` on ``event`` as one step: what it adds is dropped if it fails."""
        store = self.store
        # Every log line about this post carries its id and (once matched) its brand.
        token = enter_event(event.id)
        mark = store.mark(savepoint=isinstance(event, Action))  # actions write the audit
        try:
            out = act(event, now)
        except Exception:
            self._failed(event, mark)
            return due
        else:
            store.release(mark)
        finally:
            leave_event(token)
        if due:
            due.extend(out)
            return due
        return out

    def _failed(self, event: Event, mark: Mark | None) -> None:
        """Handling ``event`` raised (a bug): drop what it added after ``mark``, count
        it and log it (with the traceback: called while the error is handled)."""
        if mark is not None:
            self.store.undo(mark)
        self.stats.failed += 1
        log.exception("event skipped: handling it failed", event_id=event.id,
                      source=event.source)

    def apply_stored(self, event: StoredEvent, seen_at: float,
                     decision: bytes | None = None) -> list[Alert]:
        """Act on an event another instance stored (it is in the store already, with
        ``decision``), as ``rebuild`` would: at the time it was seen, as decided then.
        Returns the alerts recorded."""
        store = self.store
        if not store.in_transaction:
            with store.transaction():
                return self.apply_stored(event, seen_at, decision)
        due = self._record(self.engine.advance(cutoff(event, seen_at), inclusive=False))
        post_id = getattr(event, "id", getattr(event, "post_id", None))
        token = enter_event(post_id)
        mark = store.mark(savepoint=isinstance(event, Action))
        try:
            out = self._record(self._process(event, seen_at, decision, stored=True))
        except Exception:
            store.undo(mark)
            self.stats.failed += 1
            log.exception("stored event skipped: handling it failed", event_id=post_id)
            return due
        else:
            store.release(mark)
        finally:
            leave_event(token)
        return due + out

    def reset_engine(self) -> None:
        """A fresh engine (same brands, also those a reload added), for a full rebuild."""
        old = self.engine
        self.engine = EscalationEngine(list(old.brands.values()), self.config.sla,
                                       self.config.crisis, self.config.tz)

    def _handle(self, event: Event, now: float) -> list[Alert]:
        if isinstance(event, Post) and event.created_at < self.forgotten_before:
            self.stats.stale += 1
            return []
        if not self.store.add_event(event, now):
            return self._duplicate(event, now)
        return self._record(self._process(event, now))

    def _duplicate(self, event: Event, now: float) -> list[Alert]:
        """``event`` was stored before: only a known post's repost counter can grow."""
        self.stats.duplicates += 1
        known = self.engine.known_reposts(event.id) if isinstance(event, Post) else -1
        if isinstance(event, Post) and 0 <= known < event.reposts_count:
            update = CountsSeen(event.id, event.reposts_count)
            if self.store.add_event(update, now):
                return self._record(self.engine.on_counts(event.id, event.reposts_count, now))
        return []

    def tick(self, now: float, inclusive: bool = True) -> list[Alert]:
        """Fire every deadline due up to and including ``now`` (``inclusive`` False:
        strictly before it, as before a digest whose period ends at ``now``)."""
        if not self.store.in_transaction:
            with self.store.transaction():
                return self.tick(now, inclusive)
        return self._record(self.engine.advance(now, inclusive=inclusive))

    def rebuild(self, taken_before: float | None = None) -> list[Alert]:
        """Rebuild engine state from the store after a restart (or a takeover).

        From the newest engine snapshot (``Store.save_snapshot``; taken at or before
        ``taken_before``, wall time, if given), then the events stored after it, each with
        the decisions stored with it (``monitor.decision``): the cost is that of the open
        state and of the events since the snapshot, not of the history, and nothing is
        matched or scored again. The engine then continues with the current config's reply
        rule and crisis settings, for mentions and incidents that come from now on.

        A snapshot this code cannot read (another build's) is set aside: the stored events
        are fed into a fresh engine, and the alerts that raises up to the snapshot's point
        are not recorded (they were, when they fell due).

        Returns the alerts that were due during the stored history but never recorded
        (a crash between deciding and recording): they still need sending.
        """
        started = time.perf_counter()
        snap = self.store.load_snapshot(taken_before)
        quiet_seq, quiet_at, since = 0, -math.inf, 0
        if snap is not None:
            seq, at, body = snap
            try:
                self.engine = EscalationEngine.restore(body)
                since = seq
            except SnapshotError as exc:
                log.warning("engine snapshot set aside; feeding the stored events again",
                            reason=str(exc))
                quiet_seq, quiet_at = seq, at
        self.restored_from = since
        raw: list[Alert] = []
        n = 0
        for seq, seen_at, event, decision in self.store.events_since(since):
            if quiet_seq and seq > quiet_seq:  # past the snapshot's point
                self.engine.advance(quiet_at, inclusive=True)  # recorded when they fell due
                quiet_seq = 0
            due = self.engine.advance(cutoff(event, seen_at), inclusive=False)
            post_id = getattr(event, "id", getattr(event, "post_id", "?"))
            token = enter_event(post_id)
            try:
                due += self._process(event, seen_at, decision, stored=True)
            except Exception:  # as in handle(): one bad event must not stop the start
                self.stats.failed += 1
                log.exception("stored event skipped in rebuild", event_id=post_id)
            finally:
                leave_event(token)
            if not quiet_seq:
                raw.extend(due)  # add_alerts drops those recorded before (by their id)
            n += 1
        if quiet_seq:
            self.engine.advance(quiet_at, inclusive=True)
        engine = self.engine
        self.config_changed = (engine.sla, engine.crisis) != (self.config.sla, self.config.crisis)
        self.apply_config()
        # The projections were committed with their events; only new alerts need writing.
        self.engine.dirty_mentions.clear()
        self.engine.dirty_incidents.clear()
        unsent = self._record(raw)
        log.info("state rebuilt", snapshot_seq=since, events=n,
                 mentions=len(self.engine.clocks), pending_deadlines=self.engine.pending(),
                 unsent_alerts=len(unsent), seconds=round(time.perf_counter() - started, 3))
        self.replayed = n
        return unsent

    def apply_config(self) -> None:
        """The current config's brands, reply rule and crisis settings, for what comes
        from now on (a mention keeps the rule it was first seen under, an incident the
        settings it opened under: ``ReplyClock.sla``, ``EscalationEngine.policy``)."""
        engine = self.engine
        engine.sla = self.config.sla
        engine.crisis = self.config.crisis
        engine.tz = self.config.tz
        engine.brands = {b.name: b for b in self.config.brands} | {
            name: b for name, b in engine.brands.items()
            if name not in {x.name for x in self.config.brands}}
        for name in engine.brands:
            engine.activity.setdefault(name, BrandActivity())

    def snapshot(self, now: float, keep_for: float = 0.0) -> int:
        """Store the engine's state as of every event stored so far, in the current
        transaction (see ``Store.save_snapshot``); returns the seq it covers."""
        self.store.flush()  # the projections first: the snapshot leaves the dirty sets out
        return self.store.save_snapshot(self.engine.snapshot(), now, time.time(), keep_for)

    # ------------------------------------------------------------------ stages
    def _process(self, event: StoredEvent, now: float, decision: bytes | None = None,
                 stored: bool = False) -> list[Alert]:
        """Act on ``event``; ``stored``: it was stored before, with ``decision`` (None:
        before decisions were stored, so it is decided now, once)."""
        if isinstance(event, Action):
            self.stats.actions += 1
            self.audit.action(event, now)  # once per action id, so a rebuild adds nothing
            return self.engine.on_action(event, now, self._subject(event.target))
        if isinstance(event, CountsSeen):
            return self.engine.on_counts(event.post_id, event.reposts_count, now)
        if stored:
            known = decisions.decode(decision)
            if known is not None:
                return self._post(event, now, known)
        return self._post(event, now)

    def _tone(self, text: str) -> float:
        """P(negative) of an official reply, for the argument guard (a few a day: one
        text at a time is cheap enough)."""
        return polarities(self.scorer.sentiment, [text])[0].negative

    def _subject(self, target: str) -> str | None:
        """What an action naming an alert (``a-…``, or a repeat's ``a-…-rN``) is about;
        None for any other target (a post id, a mention key, an incident id)."""
        if not target.startswith("a-"):
            return None
        alert = self.store.alert(base_alert_id(target))
        return None if alert is None else self.engine.subject_of(alert)

    def decide(self, post: Post) -> Decision:
        """Which brands ``post`` is about (and how it scores), which brands' official
        accounts wrote it (with the arguing moves of a reply), and, for a post about no
        brand that reposts or comments a known story, the score of its own words: decided
        once, when first seen, then stored with the post."""
        return self._decide(post)[0]

    def _decide(self, post: Post) -> tuple[Decision, bytes | None]:
        """``decide``, and the decision encoded when the feed reader encoded it
        (``prepare``'s ``decided``: a post naming a brand), else None."""
        ahead = self._decided
        early = None if ahead is None else ahead.pop(post.id, None)
        if early:
            known = decisions.decode(early) or NOTHING  # (never None: bytes were given)
            if known.mentions:  # complete: what follows would decide the same
                self._matched.pop(post.id, None)
                event_brand(",".join(m.brand for m in known.mentions))
                return known, early
            official = known.official  # its story part is this process's to decide
        elif ahead is not None and early is None:
            official = ()  # the reader listed every official account's post
        else:  # nothing decided ahead, or an official account's post left to this process
            official = official_decision(post, self.matcher, self.argument, self._tone)
        ready = self._matched.pop(post.id, _UNPREPARED)
        if ready is _UNPREPARED:  # as ``assess_posts`` would, one post
            ready = None
            matches = self.matcher.match(post.text, post.author.id)
        else:
            matches = [] if ready is None else ready[0]
        if not matches:
            story = None
            if self.engine.story_root(post) is not None:
                story = self._story_score(post, ready)
            if official or story is not None:
                return Decision(official=official, story=story), None
            return NOTHING, None
        event_brand(",".join(m.brand for m in matches))  # log lines from here name it
        score = ready[1] if ready is not None else self.scorer.score(post)
        return mention_decision(post, matches, score, official), None

    def _post(self, post: Post, now: float, decided: Decision | None = None) -> list[Alert]:
        self.stats.posts += 1
        if decided is None:
            decided, body = self._decide(post)
            if decided is not NOTHING:
                self.store.decide(post.id, body or decisions.encode(decided))
        out: list[Alert] = []
        for brand, terms in decided.official:
            self.stats.official += 1
            out.extend(self.engine.on_official(post, brand, terms, now))
        if decided.mentions:
            event_brand(",".join(m.brand for m in decided.mentions))
            for m in decided.mentions:
                self.stats.mentions += 1
                mention = Mention(post=post, brand=m.brand, score=m.score,
                                  needs_reply=m.needs_reply, keywords=m.keywords)
                out.extend(self.engine.on_mention(mention, now))
            root = self.engine.story_root(post)
            named = frozenset(m.brand for m in decided.mentions)
            if root is not None and self.engine.story_brands(root) - named:
                # It also reposts another brand's story: it counts there too, with the
                # same score as in its own brands' stories (a pure repost: volume only).
                first = decided.mentions[0]
                out.extend(self.engine.on_story_post(
                    root, post, first.score if first.needs_reply else None, now, named=named))
        else:
            root = self.engine.story_root(post)
            if root is not None:  # a repost or comment of a story: it counts in the story
                self.stats.reposts_of_mentions += 1
                out.extend(self.engine.on_story_post(root, post, decided.story, now))
        return out

    def _story_score(self, post: Post, ready: Any) -> Score | None:
        """The score of a story post's own words (None when it has none: a pure repost is
        volume only), as worked out ahead by ``prepare`` where it was."""
        if not has_own_words(post):
            return None
        if ready is not None and ready is not _UNPREPARED:
            return ready[1]
        return self.scorer.score(replace_text(post, own_words(post.text)))

    def _record(self, raw: list[Alert]) -> list[Alert]:
        """Address the alerts and keep the new ones in the outbox.

        The projections they changed are written when the store writes its buffers
        (``_flush_projections``, once per batch)."""
        if not raw:
            return raw
        owns, resolve, add, all_channels = (self.owns, self.router.resolve,
                                            self.store.add_alerts, self.channels)
        if owns is not every_brand:
            # Another instance holds the lease of some brands and pages for them.
            raw = [alert for alert in raw if owns(alert.brand)]
        # ``raw`` is the engine's, just raised, and no one else's: addressed in place.
        if not all_channels:  # no delivery rows: the lot in one call (the replay's case)
            new = add([alert.address_fresh(resolve(alert, all_channels)[0]) for alert in raw])
        else:
            new = []
            for alert in raw:  # a delivery only on each channel the alert is routed to
                people, channels = resolve(alert, all_channels)
                new += add((alert.address_fresh(people),), channels)
        self.stats.alerts += len(new)
        return new

    def _flush_projections(self) -> None:
        """The mention rows and incident records changed since the last write."""
        engine = self.engine
        reasons_json = self._reasons_json
        self.store.save_mentions(stored_rows(engine.dirty_mentions, reasons_json))
        self.store.save_incidents([
            (inc.id, inc.brand, json.dumps(incident_record(inc, self.config, engine.policy(inc)),
                                           ensure_ascii=False))
            for inc in (engine.incidents[i] for i in engine.dirty_incidents)])
        engine.dirty_mentions.clear()
        engine.dirty_incidents.clear()


def official_decision(post: Post, matcher: BrandMatcher, argument: ArgumentGuard,
                      tone: Callable[[str], float]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The brands whose official account wrote ``post``, each with the arguing phrases of
    a reply (``Decision.official``; ``tone``: P(negative) of a text)."""
    return tuple((brand, argument.check(post.text, tone) if post.targets else ())
                 for brand in matcher.official_brands(post.author.id))


def mention_decision(post: Post, matches: Sequence[BrandMatch], score: Score,
                     official: tuple[tuple[str, tuple[str, ...]], ...]) -> Decision:
    """The decision about a post that names a brand: a mention of each, needing a reply
    unless it is a pure repost."""
    pure = is_pure_repost(post) or (post.reposts_id is not None
                                    and own_words(post.text) in ("", "转发微博"))
    return Decision(tuple(BrandDecision(m.brand, m.keywords, score, not pure)
                          for m in matches), official)


def early_decisions(posts: Sequence[Post], assessed: Mapping[str, Assessment],
                    matcher: BrandMatcher,
                    official: Callable[[Post], tuple[tuple[str, tuple[str, ...]], ...]]
                    ) -> dict[str, bytes]:
    """What can be decided about ``posts`` without the engine, encoded, by post id (the
    first post of an id counts, as in ``assess_posts``): a post naming a brand
    (``assessed``; ``official``: ``official_decision`` of a post), wholly. Any other post
    by an official account is listed with empty bytes: its argument check is left to the
    replay's process (it costs the same in either, and the reader is the busier one on a
    day of few mentions), and whether it is in a story is the engine's to say. For the
    replay's feed reader, which does this in its own process (``Pipeline.prepare``'s
    ``decided``)."""
    out: dict[str, bytes] = {}
    official_brands = matcher.official_brands
    for post in posts:
        pid = post.id
        if pid in out:
            continue
        ready = assessed.get(pid)
        if ready is not None and ready[0]:
            # ``official`` is () but for an official account's post: asked of those only
            # (~1 µs a mention, a third of a mention-heavy day's posts)
            out[pid] = decisions.encode(mention_decision(
                post, ready[0], ready[1], official(post) if official_brands(post.author.id)
                else ()))
        elif official_brands(post.author.id):
            out[pid] = b""
    return out


def incident_record(inc: Incident, config: Config,
                    policy: CrisisConfig | None = None) -> dict[str, object]:
    """An incident as a JSON-ready dict (incidents.jsonl, the store, the dashboard);
    ``policy``: the crisis settings it opened under (default: the config's)."""
    tz = config.tz
    crisis = policy or config.crisis

    def t(x: float | None) -> str | None:
        return None if x is None else format_instant(x, tz)

    return {
        "id": inc.id, "brand": inc.brand, "opened_at": t(inc.opened_at),
        "trigger": str(inc.trigger), "trigger_post_id": inc.trigger_post_id,
        "severity": inc.severity, "level": inc.level, "detail": inc.detail,
        "baseline_per_hour": round(inc.baseline_per_hour, 3),
        "statement_due": t(inc.opened_at + crisis.statement_due),
        "statement_at": t(inc.statement_at), "statement_post_id": inc.statement_post_id,
        "checkpoints": [t(inc.opened_at + c) for c in crisis.checkpoints],
        "window_end": t(inc.opened_at + crisis.window[1]),
        "closed_at": t(inc.closed_at), "mentions": inc.mentions, "negatives": inc.negatives,
        "acked_by": inc.acked_by, "resolved_by": inc.resolved_by,
    }
