"""Prometheus metrics for one Daemon, on a registry of its own.

Why not the global registry: tests run several daemons in one process, and each must
count only its own work. Counters are bumped from a few small hooks (a batch ingested,
alerts raised, a channel's send); gauges that mirror state (open incidents, pending
deadlines, the outbox backlog) are read when Prometheus scrapes, so they cannot drift.

Whether pages go out in time: ``crisismon_delivery_latency_seconds`` (due -> delivered,
per channel, first sends), ``crisismon_delivery_oldest_pending_seconds`` (per channel, read
at scrape) and ``crisismon_reply_time_seconds`` (mention -> first official reply, per
brand). docs/operations.md has alerting rules built on them.

Faults each have a gauge saying "broken now" and a counter of how often (see
docs/operations.md, "What happens when things break"): ``crisismon_source_up`` and
``crisismon_source_failures_total``; ``crisismon_channel_up``, ``..._connected`` and
``crisismon_delivery_failures_total``; ``crisismon_recording_ok`` and
``crisismon_recording_dropped_total``; ``crisismon_store_locked`` and
``crisismon_store_locked_retries_total``; ``crisismon_clock_jumps_total``.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.channels.base import Thread, is_repeat
from alerts.outbox import Sender
from monitor.sources.base import Batch
from rules.records import Alert

if TYPE_CHECKING:
    from monitor.daemon import Daemon
    from monitor.sources.recorder import Recorder
    from rules.engine import ClockMap

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
"""Due -> delivered: sub-second when all is well; minutes when a channel is down, a
provider rate-limits, or noise control holds a page (grouping, quiet hours)."""
REPLY_BUCKETS = (30, 60, 120, 180, 240, 300, 450, 600, 900, 1800, 3600, 7200)
"""Mention -> official reply, around the 5-minute rule (and its 3-minute warning)."""
LOOP_PROBE_EVERY = 0.5
BREACH_TYPES = frozenset({"reply.breach", "reply.escalated"})


class Metrics:
    """The daemon's counters and gauges; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.last_loop_lag = 0.0
        self.posts = Counter("crisismon_posts_ingested", "Posts and actions ingested (new or "
                             "repeated), per source.", ["source"], registry=r)
        self.batches = Counter("crisismon_batches", "Batches stored, per source.", ["source"],
                               registry=r)
        self.mentions = Counter("crisismon_mentions", "Brand mentions matched.", ["brand"],
                                registry=r)
        self.alerts = Counter("crisismon_alerts", "Alerts raised, by type and brand.",
                              ["type", "brand"], registry=r)
        self.breaches = Counter("crisismon_reply_breaches", "Reply-clock breaches "
                                "(reply.breach and reply.escalated), per brand.", ["brand"],
                                registry=r)
        self.deliveries = Counter("crisismon_deliveries", "Alerts delivered, by channel and "
                                  "alert type.", ["channel", "type"], registry=r)
        self.delivery_failures = Counter("crisismon_delivery_failures", "Failed delivery "
                                         "tries, by channel.", ["channel"], registry=r)
        self.poll_lag = Gauge("crisismon_poll_lag_seconds", "Age (daemon clock) of the newest "
                              "post in the last batch of each source.", ["source"], registry=r)
        self.last_batch = Gauge("crisismon_source_last_batch_timestamp_seconds", "Wall time "
                                "of the last batch of each source.", ["source"], registry=r)
        self.loop_lag = Gauge("crisismon_event_loop_lag_seconds", "How late the last event "
                              "loop probe woke up.", registry=r)
        self.loop_lag_hist = Histogram("crisismon_event_loop_lag", "Event loop lag probes, "
                                       "seconds.", registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.reloads = Counter("crisismon_config_reloads", "SIGHUP reloads, by result.",
                               ["result"], registry=r)
        self.clock_jumps = Counter("crisismon_clock_jumps", "Jumps of the daemon's clock "
                                   "against the monotonic clock (NTP steps, resumes), by "
                                   "direction.", ["direction"], registry=r)
        self.last_jump = Gauge("crisismon_clock_last_jump_seconds", "Size of the last clock "
                               "jump (negative: backwards).", registry=r)
        self.delivery_latency = Histogram(
            "crisismon_delivery_latency_seconds", "Alert due -> delivered, per channel (first "
            "sends; repeats not), noise-control holds included.", ["channel"], registry=r,
            buckets=DELIVERY_BUCKETS)
        self.reply_time = Histogram(
            "crisismon_reply_time_seconds", "Mention posted -> first public official reply, "
            "per brand (replies seen live; a rebuild does not count them again).", ["brand"],
            registry=r, buckets=REPLY_BUCKETS)
        self._reply_errors = 0
        self.now: Callable[[], float] = time.time
        """The daemon's clock (the engine's: alerts' ``at`` is on it); set by ``watch``."""

    # ------------------------------------------------------------------ hooks
    def on_batch(self, batch: Batch, now: float) -> None:
        """A source's batch was stored at ``now`` (daemon clock)."""
        self.batches.labels(batch.source).inc()
        if batch.events:
            self.posts.labels(batch.source).inc(len(batch.events))
            newest = max(getattr(e, "created_at", now) for e in batch.events)
            self.poll_lag.labels(batch.source).set(max(0.0, now - newest))
        self.last_batch.labels(batch.source).set(time.time())

    def on_alerts(self, alerts: Iterable[Alert]) -> None:
        """New alerts were recorded."""
        # Counted first, one ``labels`` and ``inc`` per distinct label set: a batch of a
        # firehose raises hundreds of alerts of a few kinds (~1 % of the daemon's CPU).
        for (kind, brand), n in collections.Counter((str(a.type), a.brand)
                                                    for a in alerts).items():
            self.alerts.labels(kind, brand).inc(n)
            if kind in BREACH_TYPES:
                self.breaches.labels(brand).inc(n)

    def on_mentions(self, clocks: ClockMap, before: int) -> None:
        """Reply clocks past the first ``before`` are new mentions (dicts keep order)."""
        new = collections.Counter(clock.brand for clock in itertools.islice(
            reversed(clocks.values()), len(clocks) - before))
        for brand, n in new.items():
            self.mentions.labels(brand).inc(n)

    def on_clock_jump(self, seconds: float) -> None:
        """The daemon's clock jumped by ``seconds`` (``monitor.clockwatch``)."""
        self.clock_jumps.labels("forward" if seconds > 0 else "backward").inc()
        self.last_jump.set(seconds)

    def on_delivered(self, channel: str, alerts: Iterable[Alert]) -> None:
        """``alerts`` went out on ``channel`` now: how long after they fell due."""
        now = self.now()
        hist = self.delivery_latency.labels(channel)
        for alert in alerts:
            if not is_repeat(alert):
                hist.observe(max(0.0, now - alert.at))

    def watch(self, daemon: Daemon) -> None:
        """Gauges read from the daemon's state at scrape time; reply times as the store
        learns of replies."""
        self.now = lambda: daemon.clock.now()
        self.registry.register(_StateCollector(daemon))
        # Before the pipeline's own hook, which writes the mention rows and forgets them.
        daemon.store.on_flush.insert(0, lambda: self._replies(daemon))

    def _replies(self, daemon: Daemon) -> None:
        """Observe the reply time of each mention answered since the last write: a mention
        the engine marks replied whose stored row is not yet (so a rebuild, a restart or
        a peer's catch-up, whose rows say replied already, counts nothing twice)."""
        try:
            self._observe_replies(daemon)
        except Exception:  # runs inside the store's commit: a metric must never fail it
            if not self._reply_errors:
                log.exception("reply-time metric failed; ingest goes on")
            self._reply_errors += 1

    def _observe_replies(self, daemon: Daemon) -> None:
        replied = {c.key: c for c in daemon.pipeline.engine.dirty_mentions
                   if c.replied_at is not None}
        if not replied:
            return
        known = daemon.store.replied_keys(list(replied))
        for key, c in replied.items():
            if key not in known and c.replied_at is not None:  # (always: see ``replied``)
                self.reply_time.labels(c.brand).observe(max(0.0, c.replied_at - c.created_at))

    def metered(self, channels: Sequence[Sender]) -> list[Sender]:
        """Channels wrapped so each send is counted (the outbox stays unaware)."""
        return [MeteredSender(c, self) for c in channels]

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def probe_loop(self, every: float = LOOP_PROBE_EVERY,
                         clock: Callable[[], float] = time.monotonic) -> None:
        """Measure event-loop lag: how late a sleep of ``every`` seconds wakes up."""
        while True:
            start = clock()
            await asyncio.sleep(every)
            lag = max(0.0, clock() - start - every)
            self.last_loop_lag = lag
            self.loop_lag.set(lag)
            self.loop_lag_hist.observe(lag)


class MeteredSender:
    """A channel that counts its deliveries and failures, then behaves exactly as before."""

    def __init__(self, inner: Sender, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics
        if callable(getattr(inner, "send_batch", None)):  # the outbox batches only then
            self.send_batch = self._send_batch

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None:
        try:
            # The outbox passes a thread only for incident messages (see Outbox._deliver).
            ref = await (self.inner.send(alert) if thread is None
                         else self.inner.send(alert, thread))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.metrics.delivery_failures.labels(self.name).inc()
            raise
        self.metrics.deliveries.labels(self.name, str(alert.type)).inc()
        self.metrics.on_delivered(self.name, (alert,))
        return ref

    async def _send_batch(self, items: list[tuple[Alert, Thread | None]]
                          ) -> list[str | Exception | None]:
        """The inner channel's ``send_batch``, each outcome counted like ``send``'s."""
        results: list[str | Exception | None] = await self.inner.send_batch(  # type: ignore[attr-defined]
            items)
        went = []
        failed = 0
        for (alert, _thread), res in zip(items, results, strict=True):
            if isinstance(res, Exception):
                failed += 1
            else:
                went.append(alert)
        if failed:
            self.metrics.delivery_failures.labels(self.name).inc(failed)
        for kind, n in collections.Counter(str(a.type) for a in went).items():
            self.metrics.deliveries.labels(self.name, kind).inc(n)
        self.metrics.on_delivered(self.name, went)
        return results


class _StateCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        engine = d.pipeline.engine
        incidents = GaugeMetricFamily("crisismon_open_incidents", "Crisis incidents open, "
                                      "per brand.", labels=["brand"])
        for brand in engine.brands:
            incidents.add_metric([brand], 1.0 if brand in engine.open_incident else 0.0)
        yield incidents
        yield GaugeMetricFamily("crisismon_pending_deadlines", "Deadlines armed in the "
                                "engine.", value=engine.pending())
        yield GaugeMetricFamily("crisismon_open_reply_clocks", "Mentions still waiting for "
                                "an official reply.",
                                value=sum(1 for c in engine.clocks.values() if c.is_open))
        backlog = GaugeMetricFamily("crisismon_outbox", "Deliveries in the outbox, by "
                                    "channel and state.", labels=["channel", "state"])
        for (channel, state), n in sorted(d.store.delivery_counts().items()):
            backlog.add_metric([channel, state], n)
        yield backlog
        yield _oldest_pending(d)
        yield GaugeMetricFamily("crisismon_ready", "1 when /readyz would answer 200.",
                                value=1.0 if d.is_ready() else 0.0)
        yield from _sources(d)
        yield from _channels(d)
        yield from _store_locks(d)
        if d.recorder is not None:
            yield from _recording(d.recorder)


def _oldest_pending(d: Daemon) -> Metric:
    """Per channel: how long ago the oldest page still to go out fell due (0: none).

    First sends that are due now, or that failed at least once (a channel that is down
    shows its whole outage, also between retries); not those noise control put off on
    purpose (quiet hours, a group's flush time) until that time comes, so the gauge
    alarms on a stuck or slow channel, not on policy."""
    now = d.clock.now()
    oldest = d.store.oldest_pending(now)
    gauge = GaugeMetricFamily("crisismon_delivery_oldest_pending_seconds", "Age (since it "
                              "fell due) of the oldest alert not yet delivered, per channel; "
                              "0 when none is waiting.", labels=["channel"])
    for name in d.outbox.channels:
        at = oldest.get(name)
        gauge.add_metric([name], 0.0 if at is None else max(0.0, now - at))
    return gauge


def _sources(d: Daemon) -> Iterator[Metric]:
    """Per live source (per poller for the Weibo API): up now, and failures so far."""
    up = GaugeMetricFamily("crisismon_source_up", "1 while a live source is connected "
                           "(MQTT) or its last poll worked (API pollers).", labels=["source"])
    failures = CounterMetricFamily("crisismon_source_failures", "Failed connection attempts "
                                   "or polls, per source.", labels=["source"])
    for source in d.sources:
        for unit in getattr(source, "pollers", None) or [source]:
            total = getattr(unit, "failures_total", None)
            if total is None:
                continue  # a recorded feed: nothing to connect to
            subscribed = getattr(unit, "subscribed", None)
            ok = subscribed.is_set() if isinstance(subscribed, asyncio.Event) \
                else getattr(unit, "failures", 0) == 0
            up.add_metric([unit.name], 1.0 if ok else 0.0)
            failures.add_metric([unit.name], float(total))
    yield up
    yield failures
    yield _rejected(d)


def _rejected(d: Daemon) -> Metric:
    """Input refused at the edge (live sources) or skipped as a bad line (recorded
    feeds), per source and reason: bad input is counted, never silently lost."""
    rejected = CounterMetricFamily("crisismon_posts_rejected", "Posts refused at the edge "
                                   "(too large, not UTF-8, not JSON, not a post) or bad feed "
                                   "lines skipped, per source and reason.",
                                   labels=["source", "reason"])
    for source in d.sources:
        for unit in getattr(source, "pollers", None) or [source]:
            edge = getattr(unit, "edge", None)
            if edge is not None:
                for why, n in sorted(edge.stats.rejected.items()):
                    rejected.add_metric([unit.name, str(why)], float(n))
            feed = getattr(unit, "stats", None)
            if feed is not None and hasattr(feed, "bad") and feed.bad:
                rejected.add_metric([unit.name, "bad_line"], float(len(feed.bad)))
    return rejected


def _channels(d: Daemon) -> Iterator[Metric]:
    """Per channel: failing now (the outbox's view); connected (channels with a link)."""
    up = GaugeMetricFamily("crisismon_channel_up", "0 while a channel's deliveries are "
                           "failing (logged once as \"channel failing\").", labels=["channel"])
    connected = GaugeMetricFamily("crisismon_channel_connected", "1 while a channel that "
                                  "keeps a connection (MQTT) has it up.", labels=["channel"])
    failing = d.outbox.failing()
    for name, channel in d.outbox.channels.items():
        up.add_metric([name], 0.0 if name in failing else 1.0)
        link = getattr(getattr(channel, "inner", channel), "connected", None)
        if isinstance(link, bool):
            connected.add_metric([name], 1.0 if link else 0.0)
    yield up
    yield connected


def _store_locks(d: Daemon) -> Iterator[Metric]:
    locks = d.locks
    yield GaugeMetricFamily("crisismon_store_locked", "1 while a write waits for a store "
                            "another process has locked.", value=1.0 if locks.waiting else 0.0)
    retries = CounterMetricFamily("crisismon_store_locked_retries", "Writes that found the "
                                  "store locked and were tried again, by operation.",
                                  labels=["op"])
    for op, n in sorted(locks.retries.items()):
        retries.add_metric([op], float(n))
    yield retries


def _recording(rec: Recorder) -> Iterator[Metric]:
    yield GaugeMetricFamily("crisismon_recording_ok", "0 while the recording folder refuses "
                            "writes (disk full, ...); ingest goes on.",
                            value=0.0 if rec.failing else 1.0)
    yield CounterMetricFamily("crisismon_recording_failed_writes", "Batches the recorder "
                              "could not write.", value=float(rec.failed_writes))
    yield CounterMetricFamily("crisismon_recording_dropped", "Posts ingested but missing "
                              "from the recording because writing failed.",
                              value=float(rec.dropped))
