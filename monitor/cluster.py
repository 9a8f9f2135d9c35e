"""Several instances on one PostgreSQL schema: who pages for which brand.

The MQTT feed is split between instances by a shared subscription (or each polls its
own sources); every instance stores every event it receives, and the store dedupes by
post id. Each instance runs one engine over ALL events, so its state is complete:

- its own events go through ``Pipeline.handle`` as on one machine;
- events its peers stored are read back every ``catch_up_every`` (``events_after``, in
  commit order, see :mod:`monitor.store.postgres`) and applied as a rebuild would.

Only the holder of a brand's lease (:mod:`monitor.lease`) records that brand's alerts
(``Pipeline.owns``) and delivers them (``PgStore.only_brands``), so each alert is
raised and sent by exactly one instance. Leases are renewed every ``lease_ttl / 3``.
When an instance dies its leases lapse after ``lease_ttl``; a survivor's next claim
takes the brands and rebuilds its engine from a snapshot older than the dead instance's
last renewal and the events stored after it: the deadlines the dead instance had armed
fire again, alerts it already recorded are
recognised by their id, and the ones it never recorded go out (late ones at once, with
the ``at`` they were due). A clean shutdown releases the leases at once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import psycopg
import structlog

from monitor.clock import Clock, WallClock
from monitor.lease import Leases
from monitor.pipeline import Pipeline
from monitor.retry import FailureLog
from monitor.store.postgres import PgStore
from rules.records import Alert

if TYPE_CHECKING:
    from monitor.daemon import Daemon

log = structlog.get_logger(__name__)


def default_instance() -> str:
    """``<hostname>:<pid>``: unique per running instance."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Cluster:
    """This instance's share of the work: the leases it holds and the events it has seen."""

    def __init__(self, store: PgStore, pipeline: Pipeline, brands: Callable[[], Iterable[str]],
                 *, instance: str = "", ttl: float = 30.0, catch_up_every: float = 0.5,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.pipeline = pipeline
        self.brands = brands
        self.instance = instance or default_instance()
        self.ttl = ttl
        self.catch_up_every = catch_up_every
        self.clock = clock or WallClock()
        """Local time, only to pace renewals and to notice our own leases lapsing."""
        self.leases = Leases(store, self.instance, ttl)
        self.held: frozenset[str] = frozenset()
        self.watermark = 0
        """``events.seq`` up to which this engine has every event."""
        self._valid_until = 0.0
        self._renewal = FailureLog(log, "lease renewal failing", "lease renewal recovered")
        pipeline.owns = self.owns

    def owns(self, brand: str) -> bool:
        """Does this instance page for ``brand`` (hold its lease)?"""
        return brand in self.held

    # ------------------------------------------------------------------ leases
    def start(self) -> None:
        """Claim leases and mark where the events stand. Call inside the start-up
        transaction, right before ``pipeline.rebuild()`` (which then reads exactly the
        events up to ``watermark``: the write lock keeps peers from adding any)."""
        self.claim()
        self.watermark = self.store.max_seq()
        self.store.own_seqs.clear()

    def claim(self) -> frozenset[str]:
        """Renew ours and take free or expired leases; returns the brands newly gained."""
        started = self.clock.now()
        held = frozenset(self.leases.claim(self.brands(), self.leases.server_now()))
        self._valid_until = started + self.ttl
        gained, lost = held - self.held, self.held - held
        self._set_held(held)
        if lost:
            log.warning("brand leases lost to another instance", brands=sorted(lost),
                        instance=self.instance)
        if gained:
            log.info("brand leases gained", brands=sorted(gained), instance=self.instance)
        return gained

    def _set_held(self, held: frozenset[str]) -> None:
        self.held = held
        self.store.only_brands = held

    def release(self) -> None:
        """Give every lease up (clean shutdown), so a peer takes over at once."""
        self._set_held(frozenset())
        try:
            self.leases.release()
        except psycopg.Error as exc:  # they lapse after ttl anyway
            log.warning("could not release brand leases", error=str(exc))

    async def run_leases(self, daemon: Daemon) -> None:
        """Renew every ``ttl / 3``; rebuild and page for any brand taken over. Forever."""
        while True:
            await self.clock.sleep_until(self.clock.now() + self.ttl / 3)
            try:
                gained = self.claim()
            except psycopg.Error as exc:
                self._renewal.failed(exc)
                if self.held and self.clock.now() >= self._valid_until:
                    # A peer may hold them now: stop paging rather than page twice.
                    log.warning("brand leases lapsed", brands=sorted(self.held))
                    self._set_held(frozenset())
                continue
            self._renewal.succeeded()
            if gained:
                self.take_over(daemon, gained)

    def rebuild_all(self) -> list[Alert]:
        """A fresh engine fed every stored event; returns the alerts it newly recorded
        (due in the past but never recorded by the brand's previous holder)."""
        pipeline = self.pipeline
        stats = replace(pipeline.stats)  # a rebuild counts again; keep the live figures
        with self.store.transaction():
            self.watermark = self.store.max_seq()
            self.store.own_seqs.clear()
            pipeline.reset_engine()
            # From a snapshot taken before the dead instance's last renewal: the deadlines
            # it may have left unrecorded are then fired (and recorded) again.
            unsent = pipeline.rebuild(time.time() - 2 * self.ttl)
        pipeline.stats = stats
        return unsent

    def take_over(self, daemon: Daemon, gained: frozenset[str]) -> None:
        """Rebuild the engine from every stored event, then fire what is due."""
        started = self.clock.now()
        pipeline = self.pipeline
        unsent = self.rebuild_all()
        fired = daemon.fire_due()
        daemon.outbox.notify()
        daemon._rearm.set()  # the timer waits on the new engine's deadlines
        log.info("brands taken over", brands=sorted(gained), instance=self.instance,
                 alerts=len(unsent) + fired, pending_deadlines=pipeline.engine.pending(),
                 seconds=round(self.clock.now() - started, 3))

    # ------------------------------------------------------------------ catch-up
    def apply_peers(self) -> list[Alert]:
        """Feed the engine the events peers stored since the last look, in the order
        they were stored; returns the alerts recorded (for the brands held)."""
        alerts: list[Alert] = []
        with self.store.transaction():
            rows = self.store.events_after(self.watermark)
            for seq, seen_at, event, decision in rows:
                if seq not in self.store.own_seqs:  # ours are in the engine already
                    alerts += self.pipeline.apply_stored(event, seen_at, decision)
        if rows:
            self.watermark = rows[-1][0]
            self.store.own_seqs = {s for s in self.store.own_seqs if s > self.watermark}
        return alerts

    def catch_up(self, daemon: Daemon) -> None:
        """``apply_peers``, then wake the outbox and the timer as an ingest would."""
        pipeline = self.pipeline
        before = pipeline.engine.next_due()
        alerts = self.apply_peers()
        if alerts:
            daemon.metrics.on_alerts(alerts)
            daemon.outbox.notify()
            daemon.publish("alerts")
        after = pipeline.engine.next_due()
        if after is not None and (before is None or after < before):
            daemon._rearm.set()

    async def run_catch_up(self, daemon: Daemon) -> None:
        """Catch up every ``catch_up_every``, forever."""
        health = FailureLog(log, "catch-up with peers failing", "catch-up with peers recovered")
        while True:
            await self.clock.sleep_until(self.clock.now() + self.catch_up_every)
            try:
                self.catch_up(daemon)
            except psycopg.Error as exc:  # the store is down: the batch rolled back whole
                health.failed(exc)
                continue
            health.succeeded()


def build_cluster(daemon: Daemon) -> Cluster | None:
    """The cluster for a PostgreSQL store (several instances may share it), else None."""
    store = daemon.store
    if not isinstance(store, PgStore):
        return None
    cfg = daemon.config.store
    return Cluster(store, daemon.pipeline, lambda: [b.name for b in daemon.config.brands],
                   instance=cfg.instance, ttl=float(cfg.lease_ttl),
                   catch_up_every=float(cfg.catch_up_every))
