"""Prometheus metrics for one Daemon, on a registry of its own.

Why not the global registry: tests run several daemons in one process, and each must
count only its own work. Counters are bumped from a few small hooks (a batch ingested,
alerts raised, a channel's send); gauges that mirror state (open incidents, pending
deadlines, the outbox backlog) are read when Prometheus scrapes, so they cannot drift.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.channels.base import Thread
from alerts.outbox import Sender
from alerts.record import Alert
from monitor.sources.base import Batch

if TYPE_CHECKING:
    from monitor.daemon import Daemon

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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
        for a in alerts:
            kind = str(a.type)
            self.alerts.labels(kind, a.brand).inc()
            if kind in BREACH_TYPES:
                self.breaches.labels(a.brand).inc()

    def on_mentions(self, clocks: dict[str, Any], before: int) -> None:
        """Reply clocks past the first ``before`` are new mentions (dicts keep order)."""
        for clock in itertools.islice(reversed(clocks.values()), len(clocks) - before):
            self.mentions.labels(clock.brand).inc()

    def watch(self, daemon: Daemon) -> None:
        """Gauges read from the daemon's state at scrape time."""
        self.registry.register(_StateCollector(daemon))

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
        return ref


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
        yield GaugeMetricFamily("crisismon_ready", "1 when /readyz would answer 200.",
                                value=1.0 if d.is_ready() else 0.0)
