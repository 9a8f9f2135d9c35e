"""Digests: the 舆情日报 and the weekly review, made on a schedule from the store.

``[[digests]]`` (``monitor.digest_config``) names a crontab; APScheduler's ``CronTrigger``
computes the fire times (``get_next_fire_time``) from whatever clock drives the engine,
so the same code runs on the wall clock (the daemon), a demo's scaled clock, and the
replay's simulated clock, deterministically.

A digest covers ``[period_start, period_end)`` and is computed only from what the store
held by ``period_end`` (mentions created, replies posted, alerts due and incident
changes before it), so the same digest computed later says the same. Its id is derived
from its name and period (``alert_id("digest", name, start, end)``): made twice, it is
stored once. It goes out through the outbox like any alert (type ``digest``, the
figures as JSON in its text, retried until delivered), only to its own channels.

Missed runs: the last period end made by the schedule is kept in the store's meta
table. On start, the latest fire time not yet made is made once (covering everything
since the last digest), never once per missed run; a digest never made before starts
with the next fire time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from alerts.digest import Digest, digest_alert
from monitor.digest_config import DigestConfig, cron_trigger
from monitor.mention_record import MentionRecord, report_fields, report_record
from rules.deadlines import in_time, reply_due
from rules.records import Alert, AlertType, alert_id, format_instant

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.store import Store

log = structlog.get_logger(__name__)

META = "digest:"
"""Store meta key prefix: ``digest:<name>`` holds the last scheduled period end made."""
REPLY_TYPES = {"reply.warning": 0, "reply.breach": 1, "reply.escalated": 2}
"""The reply-rule alerts counted as breaches, by their ladder level."""
CRISIS_TYPES = tuple(str(t) for t in AlertType if str(t).startswith("crisis."))
"""The incident alerts an incident's plot marks (no LIKE: PostgreSQL reads ``%``)."""
CHECK_EVERY = 30.0
"""Real seconds the daemon's digest loop sleeps at most before reading the clock again
(a clock jump, or a demo clock, must not make it sleep past a fire time)."""


# --------------------------------------------------------------------- schedule
class Schedule:
    """Fire times of one digest's crontab, as epoch seconds in the configured zone."""

    def __init__(self, cfg: DigestConfig, tz: tzinfo) -> None:
        self.cfg = cfg
        self.tz = tz
        self.trigger = cron_trigger(cfg.cron, tz)

    def at_or_after(self, t: float) -> float | None:
        """The first fire time at or after ``t`` (None: the crontab never fires again)."""
        nxt = self.trigger.get_next_fire_time(None, datetime.fromtimestamp(t, self.tz))
        return None if nxt is None else nxt.timestamp()

    def after(self, t: float) -> float | None:
        """The first fire time strictly after ``t`` (fire times are whole seconds)."""
        return self.at_or_after(math.floor(t) + 1)

    def before(self, t: float) -> float | None:
        """The last fire time strictly before ``t``, or None within the searched year."""
        step = 3600.0
        while step <= 400 * 86400:
            first = self.at_or_after(t - step)
            if first is not None and first < t:
                while (nxt := self.after(first)) is not None and nxt < t:
                    first = nxt
                return first
            step *= 2
        return None

    def latest(self, t: float) -> float | None:
        """The last fire time at or before ``t``."""
        at = self.at_or_after(t)
        return at if at is not None and at <= t else self.before(t)


# --------------------------------------------------------------------- figures
def _mentions(store: Store, start: float, end: float) -> list[MentionRecord]:
    return [MentionRecord.from_row(row) for row in store.mentions_between(start, end)]


def _baselines(store: Store, start: float, span: float,
               period: float) -> dict[str, tuple[float, float] | None]:
    """Per brand: (mentions per period, negative share) over up to ``span`` before
    ``start``; None unless the brand's history covers at least one whole period."""
    if span <= 0:
        return {}
    first = store.first_mentions()
    counts = store.mention_counts(start - span, start)
    out: dict[str, tuple[float, float] | None] = {}
    for brand, since in first.items():
        covered = start - max(start - span, since)
        n, neg = counts.get(brand, (0, 0))
        out[brand] = None if covered < period or n == 0 else \
            (round(n * period / covered, 2), round(neg / n, 4))
    return out


def _breaches(store: Store, start: float, end: float) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"L0": 0, "L1": 0, "L2": 0})
    for brand, kind, n in store.alert_counts(start, end, tuple(REPLY_TYPES)):
        out[brand][f"L{REPLY_TYPES[kind]}"] += n
    return out


def _epoch(iso: object) -> float | None:
    return None if not iso else datetime.fromisoformat(str(iso)).timestamp()


def _incidents(store: Store, config: Config, start: float,
               end: float) -> dict[str, list[dict[str, Any]]]:
    """Incidents open at some time in the period, as they stood at its end."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    burst = float(config.crisis.burst_window)
    for body in store.incident_bodies(by_id=True):
        rec = json.loads(body)
        opened = _epoch(rec.get("opened_at"))
        if opened is None or opened >= end:
            continue
        closed = _epoch(rec.get("closed_at"))
        if closed is not None and closed < end and closed < start:
            continue
        statement = _epoch(rec.get("statement_at"))
        if statement is not None and statement >= end:
            statement = None  # not out yet when the period ended
        out[rec["brand"]].append({
            "id": rec["id"], "trigger": rec.get("trigger"), "severity": rec.get("severity"),
            "opened_at": rec["opened_at"],
            "detection_seconds": _detection(store, rec, opened, burst),
            "statement_seconds": None if statement is None else round(statement - opened, 3),
            "closed_at": rec["closed_at"] if closed is not None and closed < end else None,
            "detail": rec.get("detail") or "",
        })
    return out


def _detection(store: Store, rec: dict[str, Any], opened: float, burst: float) -> float:
    """Opened minus when the story began (as ``monitor.report.detection_time``): the
    trigger post, and for a burst the first negative mention of the brand in its window."""
    starts = [opened]
    trigger = rec.get("trigger_post_id")
    if trigger is not None:
        starts += store.mention_times(rec["brand"], str(trigger))
    if rec.get("trigger") == "burst":
        first = store.first_negative(rec["brand"], opened - burst, opened)
        if first is not None:
            starts.append(first)
    return round(max(0.0, opened - min(starts)), 3)


def nearest_rank(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile by nearest rank (as ``crisismon report``), None when empty."""
    if not sorted_values:
        return None
    n = len(sorted_values)
    return sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))]


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def compute(store: Store, config: Config, cfg: DigestConfig, start: float, end: float,
            made_at: float | None = None) -> Digest:
    """The digest ``cfg`` for ``[start, end)``, from what the store held by ``end``.

    The store's buffered rows are written first (inside its open transaction, if any)."""
    if store.in_transaction:
        store.flush()
    tz = config.tz
    within = float(config.sla.reply_within)
    brands = list(cfg.brands) or [b.name for b in config.brands]
    mentions = _mentions(store, start, end)
    baselines = _baselines(store, start, float(cfg.baseline), end - start)
    breaches = _breaches(store, start, end)
    incidents = _incidents(store, config, start, end)
    per_brand: dict[str, list[MentionRecord]] = defaultdict(list)
    for m in mentions:
        per_brand[m.brand].append(m)
    out = []
    for brand in brands:
        rows = per_brand.get(brand, [])
        needing = [m for m in rows if m.needs_reply]
        # A reply counts only if it came before the period ended; a mention whose
        # deadline had not passed by then, unanswered, is pending, not late.
        times = sorted(m.replied_at - m.created_at for m in needing
                       if m.replied_at is not None and m.replied_at < end)
        replied_in_time = sum(1 for s in times if in_time(s, within))
        pending = sum(1 for m in needing if (m.replied_at is None or m.replied_at >= end)
                      and reply_due(m.created_at, config.sla) >= end)
        judged = len(needing) - pending
        negative = sum(1 for m in rows if m.negative)
        base = baselines.get(brand)
        top = sorted(rows, key=lambda m: (-m.followers, m.created_at, m.post_id))
        out.append({
            "brand": brand,
            "mentions": len(rows),
            "negative": negative,
            "negative_share": round(negative / len(rows), 4) if rows else None,
            "baseline": None if base is None else {"mentions": base[0],
                                                   "negative_share": base[1]},
            "needing_reply": len(needing),
            "replied_in_time": replied_in_time,
            "replied_in_time_pct": round(100 * replied_in_time / judged, 1) if judged else None,
            "pending": pending,
            "median_reply_seconds": _median(times),
            "p90_reply_seconds": nearest_rank(times, 0.9),
            "breaches": dict(breaches.get(brand, {"L0": 0, "L1": 0, "L2": 0})),
            "incidents": incidents.get(brand, []),
            "top_posts": [{"post_id": m.post_id, "author": m.shown_author,
                           "followers": m.followers,
                           "created_at": format_instant(m.created_at, tz),
                           "negative": m.negative, "text": m.text[:140],
                           "replied": m.replied_at is not None and m.replied_at < end}
                          for m in top[:cfg.top_posts]],
        })
    return Digest(id=digest_id(cfg.name, start, end), name=cfg.name,
                  at=format_instant(end if made_at is None else made_at, tz),
                  period_start=format_instant(start, tz), period_end=format_instant(end, tz),
                  reply_within=within, brands=out)


def digest_id(name: str, start: float, end: float) -> str:
    """One digest per name and period: the id is derived from them."""
    return alert_id("digest", name, repr(float(start)), repr(float(end)))


# --------------------------------------------------------------------- plots
def period_summary(store: Store, config: Config, digest: Digest) -> Any:
    """The period's records as ``monitor.report.Summary``, for ``monitor.plots``."""
    from monitor.report import summarise

    start, end = _epoch(digest.period_start), _epoch(digest.period_end)
    assert start is not None and end is not None
    names = {b["brand"] for b in digest.brands}
    tz = config.tz
    # The report's fields of each mentions.jsonl record, as it stood when the period ended.
    mentions = [report_record(report_fields(m.to_dict(tz, until=end)))
                for m in _mentions(store, start, end) if m.brand in names]
    incidents = []
    for body in store.incident_bodies(by_id=True):
        rec = json.loads(body)
        if rec["brand"] in names and any(i["id"] == rec["id"] for b in digest.brands
                                         for i in b["incidents"]):
            for key in ("closed_at", "statement_at"):  # as it stood when the period ended
                if (_epoch(rec.get(key)) or -math.inf) >= end:
                    rec[key] = None
            incidents.append(rec)
    alerts = [{"type": t, "at": format_instant(float(at), tz), "incident_id": inc}
              for t, at, inc in store.incident_alerts(tuple(CRISIS_TYPES), end)]
    # No replay folder: a digest's summary is only drawn, and the plots never read it.
    return summarise(Path("digest"), mentions, incidents, alerts, {}, config)


def draw_plots(summary: Any, max_incidents: int = 3) -> dict[str, bytes]:
    """The digest's plots as PNG bytes by name (mentions per hour, reply times, SLA, and
    up to ``max_incidents`` incident timelines), drawn with ``monitor.plots``."""
    import tempfile

    from monitor import plots

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="crisismon-digest-") as tmp, plots.quiet():
        plots.setup()
        drawings: list[tuple[str, Callable[[Path], None]]] = [
            ("mentions_per_hour", lambda p: plots.plot_mentions(summary, p)),
            ("reply_times", lambda p: plots.plot_reply_times(summary, p)),
            ("sla_compliance", lambda p: plots.plot_sla(summary, p)),
        ]
        for inc in summary.incidents[:max_incidents]:
            rec = inc.record
            drawings.append((f"incident_{rec['id']}",
                             functools.partial(plots.plot_incident, summary, rec)))
        for name, draw in drawings:
            path = Path(tmp) / f"{name}.png"
            draw(path)
            out[name] = path.read_bytes()
    return out


# --------------------------------------------------------------------- scheduler
@dataclass(frozen=True, slots=True)
class Due:
    """A digest to make now: its settings and period."""

    cfg: DigestConfig
    start: float
    end: float


class Digests:
    """The schedules of every ``[[digests]]`` entry, and which periods are made.

    Only ``due`` and ``made`` touch the store's meta table: the daemon, the replay and
    ``crisismon digest`` share this bookkeeping."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.schedules = {d.name: Schedule(d, config.tz) for d in config.digests}
        self._last: dict[str, float | None] = {
            name: _float(store.get_meta(META + name)) for name in self.schedules}

    def __bool__(self) -> bool:
        return bool(self.schedules)

    def period(self, cfg: DigestConfig, end: float, last: float | None = None) -> float:
        """Where the period ending at ``end`` starts: ``end - period`` when set; else the
        previous fire time, or the last digest made if that is earlier (a gap while the
        daemon was down is covered too)."""
        if cfg.period is not None:
            return end - float(cfg.period)
        prev = self.schedules[cfg.name].before(end)
        start = prev if prev is not None else end - 86400.0
        return min(start, last) if last is not None and last < end else start

    def next_at(self) -> float | None:
        """The earliest fire time not yet made (None: nothing scheduled)."""
        times = []
        for name, sched in self.schedules.items():
            last = self._last[name]
            if last is None:
                continue  # not started: ``due`` starts it
            nxt = sched.after(last)
            if nxt is not None:
                times.append(nxt)
        return min(times, default=None)

    def due(self, now: float) -> list[Due]:
        """The digests to make at ``now``: per digest, the latest fire time at or before
        ``now`` not made yet, once however many were missed. A digest never started is
        started at ``now`` (its first is the next fire time), in the store's meta."""
        out = []
        for name, sched in self.schedules.items():
            last = self._last[name]
            latest = sched.latest(now)
            if last is None:
                self._mark(name, latest if latest is not None else now)
                continue
            if latest is None or latest <= last:
                continue
            cfg = sched.cfg
            out.append(Due(cfg, self.period(cfg, latest, last), latest))
        return out

    def made(self, due: Due) -> None:
        """``due`` was made (call inside the transaction that stores it)."""
        self._mark(due.cfg.name, due.end)

    def _mark(self, name: str, end: float) -> None:
        self._last[name] = end
        self.store.set_meta(META + name, repr(end))


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def store_digest(store: Store, digest: Digest, channels: Iterable[str],
                 plots: dict[str, bytes] | None = None) -> Alert | None:
    """Put ``digest`` in the outbox for ``channels``; None if it was stored before."""
    alert = digest_alert(digest, plots)
    new = store.add_alerts([alert], list(channels))
    return new[0] if new else None


def wants_plots(config: Config, cfg: DigestConfig) -> bool:
    """Only an e-mail shows the plots: draw them only for a digest that goes by mail."""
    mail = {c.name for c in config.channels if getattr(c, "type", "") == "email"}
    return bool(mail & set(cfg.channels))


def stored_digests(store: Store) -> list[Alert]:
    """Every digest in the outbox, oldest first (``crisismon digest``, tests)."""
    if store.in_transaction:
        store.flush()
    return store.alerts_of_type(str(AlertType.DIGEST))


# --------------------------------------------------------------------- the daemon's loop
async def run_digests(daemon: Any) -> None:
    """The daemon's digest task: at each fire time (and once at start for a missed one),
    compute the digest, draw its plots off the event loop if it goes by mail, and store
    it in the outbox with its channels in one transaction. Runs until cancelled."""
    digests = Digests(daemon.config, daemon.store)
    if not digests:
        return
    clock = daemon.clock
    while True:
        try:
            for due in await daemon.locks.retry("digests", lambda: _due(daemon, digests)):
                await make_and_store(daemon, digests, due)
        except Exception:  # a digest must never take the daemon down: try again later
            log.exception("digest not made; trying again", retry_in=CHECK_EVERY)
            await asyncio.sleep(CHECK_EVERY)  # real time: the same failure, not a busy loop
            continue
        nxt = digests.next_at()
        target = nxt if nxt is not None else clock.now() + CHECK_EVERY
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHECK_EVERY):
                await clock.sleep_until(target)


def _due(daemon: Any, digests: Digests) -> list[Due]:
    with daemon.store.transaction():
        return digests.due(daemon.clock.now())


async def make_and_store(daemon: Any, digests: Digests, due: Due) -> Alert | None:
    """Make one due digest in the daemon and hand it to the outbox."""
    config, store = daemon.config, daemon.store
    with store.transaction():
        # Deadlines due before the period's end belong to it: fired first, whichever of
        # the timer and this task woke first.
        fired = daemon.pipeline.tick(due.end, inclusive=False)
        digest = compute(store, config, due.cfg, due.start, due.end)
        summary = period_summary(store, config, digest) if wants_plots(config, due.cfg) \
            else None
    plots = None
    if summary is not None:
        try:
            plots = await asyncio.to_thread(draw_plots, summary)
        except Exception:  # plots are an extra: the figures go out without them
            log.exception("digest plots failed; sending the figures without them",
                          digest=due.cfg.name)
    with store.transaction():
        alert = store_digest(store, digest, due.cfg.channels, plots)
        digests.made(due)
    log.info("digest made", digest=due.cfg.name, id=digest.id, period_start=digest.period_start,
             period_end=digest.period_end, channels=list(due.cfg.channels),
             new=alert is not None)
    if fired:
        daemon.metrics.on_alerts(fired)
    daemon.outbox.notify()
    return alert
