"""The live daemon: sources -> pipeline -> outbox -> channels, under one TaskGroup.

Start: open the store, restore the engine from its last snapshot and the events stored
after it (re-arming every pending deadline), send what was never sent. While running, the
engine is snapshotted every ``SNAPSHOT_EVERY`` s or ``SNAPSHOT_AFTER_EVENTS`` events and
the retention deletes old rows in the background (``snapshot_loop``, ``prune_loop``).
Run: each source's batches are stored and processed in one transaction; a timer fires
deadlines as the clock reaches them; one outbox worker per channel delivers. Stop
(SIGTERM/SIGINT or the ``stop`` event): stop the sources, stop the timer, snapshot the
engine, flush the outbox within a deadline, close the store.

Faults (docs/operations.md, "What happens when things break"): a store locked by another
process is waited out (``monitor.locks``); a clock that jumps is noticed by the timer
(``monitor.clockwatch``) and the deadlines it skipped fire at once, each once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from alerts.alertlog import AlertLogChannel
from alerts.outbox import WINDOWS_IN_FLIGHT, Outbox, Sender
from monitor import api as _api  # noqa: F401 - registers the ack/resolve/audit API
from monitor import dashboard as _dashboard  # noqa: F401 - /dashboard and its views
from monitor import ops as _ops  # noqa: F401 - registers /healthz, /readyz, /metrics
from monitor.app import build_pipeline, open_store
from monitor.clock import Clock, ScaledClock, SimClock, WallClock
from monitor.clock import wait as clock_wait
from monitor.clockwatch import CHECK_EVERY, ClockWatch
from monitor.config import Config, FeedSourceConfig
from monitor.digests import run_digests
from monitor.http import build_app, serve
from monitor.locks import BUSY_TIMEOUT_MS, StoreLocks
from monitor.metrics import Metrics
from monitor.mqttread import install_patches
from monitor.paging import aclose_channels, build_paging_channels, command_sources, outbox_options
from monitor.pipeline import Pipeline
from monitor.secrets import SecretError, resolve_secret
from monitor.sources.base import Batch, Source
from monitor.sources.factory import build_recorder, build_sources
from monitor.sources.feed import FeedSource
from monitor.sources.recorder import Recorder
from monitor.store import Store
from monitor.systemd import Notifier
from monitor.telemetry import logs_on_stdout
from monitor.walcheck import Checkpointer

if TYPE_CHECKING:
    from monitor.cluster import Cluster

log = structlog.get_logger(__name__)

FLUSH_TIMEOUT = 10.0
TIMER_COALESCE = 0.02
"""Real seconds the timer rests after firing alerts; deadlines due meanwhile fire together
(at most this late, against reply deadlines of minutes)."""
CLOCK_META = "clock"
SNAPSHOT_EVERY = 30.0
"""Real seconds between engine snapshots while events come in (see ``snapshot_loop``)."""
SNAPSHOT_AFTER_EVENTS = 25_000
"""... or sooner, after this many events: what a restart feeds again stays small."""
SNAPSHOT_MAX_SHARE = 0.05
"""... but never more than this share of the loop's time on taking them."""
FORK_SNAPSHOTS = hasattr(os, "fork")
"""Periodic snapshots are pickled in a forked child (``snapshot_forked``) where possible."""
GC_FREEZE_EVERY = 5.0
"""Real seconds between freezes of what is alive, snapshots or not (see ``GcWatch``)."""
GC_THAW_EVERY = 3600.0
"""Real seconds between thaws of what was frozen (see ``GcWatch``)."""
GC_YOUNG = 20_000
"""The collector's first threshold while the daemon runs (Python's: 700): allocations
net of frees between young collections. A post makes many short-lived objects, all freed
by reference counting (the collector finds no cyclic garbage live: ``gc_garbage`` 0), so
at 700 it ran ~22 times a second at 2,500 posts/s for nothing; at 20,000, 3 times in a
minute: daemon CPU 155 -> 144 us a post (back-to-back, load 6-7)."""
FORGET_AFTER = 2 * 86_400.0
"""Engine seconds the engine keeps a settled mention in memory (``forget_settled``)."""
PRUNE_EVERY = 60.0
"""Real seconds between retention passes (``prune``)."""
PRUNE_FIRST = 10.0
"""Real seconds after start of the first retention pass (a long stop leaves much)."""
PRUNE_CHUNK = 200
"""Rows deleted per transaction at first: the loop runs between two (see ``prune``) ..."""
PRUNE_CHUNK_SECONDS = 0.02
"""... then halved while one takes longer than this, doubled while one takes less than
half of it (between ``PRUNE_CHUNK_MIN`` and ``PRUNE_CHUNK_MAX``): a transaction is a wait
of the loop, and its time per row varies by table (an alert's delivery and repeat rows
and their indexes: ~9 KB of log a row, an event ~4 KB) and by the machine's load."""
PRUNE_CHUNK_MIN = 10
PRUNE_CHUNK_MAX = 200


class Daemon:
    """Owns the store, the pipeline and the outbox; is the sink every source feeds."""

    def __init__(self, config: Config, store: Store, pipeline: Pipeline, clock: Clock,
                 channels: Sequence[Sender], delivery_clock: Clock | None = None,
                 recorder: Recorder | None = None) -> None:
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.metrics = Metrics()
        self.locks = StoreLocks()
        """Writes waiting for a store another process has locked (``monitor.locks``)."""
        store.wait_when_locked(BUSY_TIMEOUT_MS)  # wait long without blocking the loop
        channels = self.metrics.metered(channels)  # counts deliveries per channel
        self.outbox = Outbox(store, {c.name: c for c in channels}, delivery_clock or WallClock(),
                             locks=self.locks, windows=WINDOWS_IN_FLIGHT,
                             **outbox_options(config, pipeline))
        self.recorder = recorder
        """The recorder of live input, if any (its failures are shown in ``/metrics``)."""
        self.watch = ClockWatch(clock)
        self.coalesce = TIMER_COALESCE
        """Real seconds the timer rests after firing (0: fire each deadline alone)."""
        self._rearm = asyncio.Event()
        self.batches = 0
        self.sources: Sequence[Source] = ()
        self.started = False
        """Set once the state is rebuilt and the sources are running (READY=1)."""
        self.notifier = Notifier()
        self.metrics.watch(self)
        self.listeners: list[asyncio.Queue[str]] = []
        """Live views (the dashboard's event stream): told what changed, never blocked."""
        self.cluster: Cluster | None = None
        """Brand leases and catch-up with peers (PostgreSQL store; ``monitor.cluster``)."""
        self.stop_reason: Callable[[], str] = lambda: "asked to stop"
        """Why ``stop`` was set, for the log line (``run_daemon``: the signal)."""
        self.events_since_snapshot = 0
        self.snapshot_seconds = 0.0
        """How long the last engine snapshot blocked the loop (see SNAPSHOT_*)."""
        self.snapshot_total = 0.0
        """... and how long it took in all (a forked child's pickling included)."""
        self.snapshot_cpu = 0.0
        """CPU seconds the last forked snapshot's child used (``snapshot_loop`` keeps it
        under a quarter of a core)."""
        self.gc_watch = GcWatch()
        """The garbage collector's pauses (logged with each snapshot), and its freezing."""
        self.pruned = 0
        """Rows the retention deleted since start."""
        self.prune_lag = 0.0
        """The event loop's worst lag during the last retention pass, in seconds."""
        self.checkpointer: Checkpointer | None = None
        """Copies a SQLite store's log on another core; the retention waits out its passes."""

    async def ingest(self, batch: Batch) -> None:
        """Store and process one batch; the cursor advances in the same transaction.

        While another process holds the store's lock this waits (``monitor.locks``), and
        so does the source: its cursor and MQTT acknowledgement follow the commit.
        """
        new = []
        async with self._writing("ingest"):
            now = self.clock.now()
            before = self.pipeline.engine.next_due()
            mentions = len(self.pipeline.engine.clocks)
            # Match, score and look up the batch's posts in one go: scored one by one, a
            # text cost ~500 µs instead of ~30 µs, the largest cost of ingest at 1,000
            # posts/s. The outcome is that of handling them one by one (``prepare``).
            # Decided ahead too, as the replay's reader does: a post that names no brand,
            # answers no post and is by no official account (most of a firehose) is
            # only stored, without the layers that would each find that out again.
            self.pipeline.prepare(batch.events, decide=True)
            try:
                for event in batch.events:
                    new += self.pipeline.handle(event, now)
            finally:
                self.pipeline.forget_prepared()
            due = self.pipeline.engine.next_due()
            if due is not None and due <= now:
                # Deadlines the batch left behind fire in its transaction: one commit, not
                # a second one per batch (deadlines fall due every few ms under load).
                new += self.pipeline.tick(now)
            if batch.cursor is not None:
                self.store.set_cursor(batch.source, batch.cursor)
            self.store.set_meta(CLOCK_META, repr(now))
        self.batches += 1
        self.events_since_snapshot += len(batch.events)
        self.metrics.on_batch(batch, now)
        self.metrics.on_alerts(new)
        self.metrics.on_mentions(self.pipeline.engine.clocks, mentions)
        self.outbox.notify()
        self.publish("ingest")
        after = self.pipeline.engine.next_due()
        if after is not None and (before is None or after < before):
            self._rearm.set()

    @contextlib.asynccontextmanager
    async def _writing(self, op: str) -> AsyncIterator[None]:
        """One store transaction, begun as soon as another process's lock allows."""
        await self.locks.retry(op, self.store.begin)  # BEGIN IMMEDIATE, or nothing happened
        try:
            yield
        except BaseException:
            self.store.rollback()
            raise
        self.store.commit()

    async def _fire_due(self) -> int:
        """``fire_due``, waiting out a locked store (its transaction begins first)."""
        return await self.locks.retry("deadlines", self.fire_due)

    def fire_due(self) -> int:
        """Fire every deadline due by now; returns how many alerts that raised."""
        now = self.clock.now()
        with self.store.transaction():
            alerts = self.pipeline.tick(now)
            self.store.set_meta(CLOCK_META, repr(now))
        if alerts:
            self.metrics.on_alerts(alerts)
            self.outbox.notify()
            self.publish("alerts")
        return len(alerts)

    # ------------------------------------------------------------ snapshots, retention
    def _snapshot_keep(self) -> tuple[float | None, float]:
        """(taken_before, keep_for) of snapshots: with peers (PostgreSQL), a rebuild starts
        from one taken at least two lease ttls ago, before anything a dead peer may have
        left unrecorded (see ``Cluster.take_over``), so that many are kept."""
        if self.cluster is None:
            return None, 0.0
        ttl = self.cluster.ttl
        return time.time() - 2 * ttl, 3 * ttl + 60.0

    def take_snapshot(self) -> int:
        """Forget settled mentions, then store the engine's state (inside a transaction);
        returns the events.seq it covers."""
        started = time.perf_counter()
        if self.cluster is not None:
            self.cluster.catch_up(self)  # in this transaction: now every stored event is in
        now = self.clock.now()
        engine = self.pipeline.engine
        forgotten = engine.forget_settled(now - FORGET_AFTER)
        seq = self.pipeline.snapshot(now, self._snapshot_keep()[1])
        self.events_since_snapshot = 0
        self.snapshot_seconds = time.perf_counter() - started
        log.info("engine snapshot stored", seq=seq, mentions=len(engine.clocks),
                  forgotten=forgotten, seconds=round(self.snapshot_seconds, 3))
        return seq

    def _snapshot_tx(self) -> int:
        with self.store.transaction():
            return self.take_snapshot()

    async def snapshot_forked(self) -> int:
        """``take_snapshot`` without stopping the loop while the engine is pickled and
        stored: the state is fixed (every stored event in, settled mentions forgotten,
        ``seq`` read) in a transaction, then a forked child pickles its copy-on-write
        image of the engine and stores it itself (``Store.write_snapshot_forked``: a file
        next to the SQLite store, a row on PostgreSQL) while the loop goes on; once the
        child has exited cleanly, the parent records it (``Store.record_snapshot``: one
        small row). A restart feeds the events after ``seq`` again.

        The loop waits for the fix, the fork and the record only (``snapshot_seconds``,
        logged as ``loop_blocked_s`` with its parts): when the child piped the ~35 MB of a
        5,000 posts/s engine back and the parent wrote them into SQLite, that was ~0.3 s
        a snapshot (docs/performance.md, "Engine snapshots")."""
        started = time.perf_counter()

        def fix() -> tuple[int, float, int]:
            with self.store.transaction():
                if self.cluster is not None:
                    self.cluster.catch_up(self)  # every stored event is in the engine
                now = self.clock.now()
                forgotten = self.pipeline.engine.forget_settled(now - FORGET_AFTER)
                seq = self.store.last_seq()  # (also writes the projections)
            return seq, now, forgotten

        seq, now, forgotten = await self.locks.retry("snapshot", fix)
        engine, store = self.pipeline.engine, self.store
        events = self.events_since_snapshot
        taken_at, keep_for = time.time(), self._snapshot_keep()[1]
        fix_s = time.perf_counter() - started
        t = time.perf_counter()
        # The collector leaves what is alive now alone (``GcWatch``): while the child runs
        # a full collection would walk (and so copy, page by page) the shared heap.
        self.gc_watch.freeze()
        # No await from ``fix`` to the fork: the engine is exactly as of ``seq``.
        pid = os.fork()
        if pid == 0:  # the child: pickle, store, leave at once (no cleanup, no flush)
            code = 1
            try:
                # A signal to the child (systemd signals the whole cgroup) must neither
                # reach the parent's loop through the inherited wake-up fd nor run its
                # handlers here.
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                gc.disable()
                # Background work: on a busy machine the loop, the broker and the channels
                # go first (the snapshot's CPU grows with the open mentions, ~1.5 s at
                # 90,000); the parent waits for it off the loop.
                os.nice(10)
                store.write_snapshot_forked(engine.snapshot(), seq, now, taken_at, keep_for)
                code = 0
            except BaseException as exc:  # said on stderr: the parent logs the status
                with contextlib.suppress(BaseException):
                    os.write(2, f"crisismon snapshot child: {type(exc).__name__}: "
                                f"{exc}\n".encode())
            finally:
                os._exit(code)
        fork_s = time.perf_counter() - t
        self.events_since_snapshot = 0  # counted from the fixed state on
        _, status, usage = await asyncio.to_thread(os.wait4, pid, 0)
        self.snapshot_cpu = usage.ru_utime + usage.ru_stime
        self.gc_watch.thaw_if_due()
        if os.waitstatus_to_exitcode(status) != 0:
            self.events_since_snapshot += events
            raise RuntimeError(f"snapshot child exited with status {status}")
        t = time.perf_counter()
        await self.locks.retry(
            "snapshot", lambda: store.record_snapshot(seq, now, taken_at, keep_for))
        stale = store.stale_snapshot_files()  # (named by no row since that commit)
        record_s = time.perf_counter() - t
        self.snapshot_seconds = blocked = fix_s + fork_s + record_s
        await asyncio.to_thread(store.remove_snapshot_files, stale)
        self.snapshot_total = time.perf_counter() - started
        gc_worst, gc_full, gc_garbage = self.gc_watch.take()
        log.info("engine snapshot stored", seq=seq, mentions=len(engine.clocks),
                 forgotten=forgotten, forked=True, seconds=round(self.snapshot_total, 3),
                 loop_blocked_s=round(blocked, 3), fix_s=round(fix_s, 3),
                 fork_s=round(fork_s, 3), record_s=round(record_s, 3),
                 child_cpu_s=round(self.snapshot_cpu, 3),
                 gc_worst_ms=round(gc_worst * 1000, 1), gc_full=gc_full,
                 gc_garbage=gc_garbage)
        return seq

    async def snapshot_loop(self) -> None:
        """A snapshot every ``SNAPSHOT_EVERY`` s (or ``SNAPSHOT_AFTER_EVENTS``) while
        events come in, so that a restart feeds only the events after it again."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            self.gc_watch.tick()  # (between snapshots too: ``GcWatch``)
            elapsed = time.monotonic() - last
            n = self.events_since_snapshot
            # The child's CPU, not its wall time: that includes the fsync of its file,
            # which costs no CPU but made the spacing (and the events a kill -9 leaves
            # to feed again: 39,597 in one run, load 11) grow with the disk's latency.
            if not n or elapsed < self.snapshot_seconds / SNAPSHOT_MAX_SHARE \
                    or elapsed < 4 * self.snapshot_cpu:  # (a forked child's CPU too)
                continue
            if n >= SNAPSHOT_AFTER_EVENTS or elapsed >= SNAPSHOT_EVERY:
                try:
                    if FORK_SNAPSHOTS and self.store.forks_snapshots():
                        await self.snapshot_forked()
                    else:
                        await self.locks.retry("snapshot", self._snapshot_tx)
                except Exception as exc:  # the store is failing: the next one will do
                    log.warning("engine snapshot failed", error=f"{type(exc).__name__}: {exc}")
                last = time.monotonic()

    async def prune(self) -> int:
        """Delete what is older than ``store.retention`` (``Store.prune_*``), a chunk per
        transaction, yielding to the loop between chunks; returns the rows deleted."""
        cutoff = self.clock.now() - self.config.store.retention
        self.pipeline.forgotten_before = max(self.pipeline.forgotten_before, cutoff)
        started = time.perf_counter()
        lag = LagWatch()
        watch = asyncio.ensure_future(lag.run())
        try:
            total, longest = await self._prune(cutoff)
        finally:
            watch.cancel()
        self.pruned += total
        self.prune_lag = lag.worst
        if total:
            log.info("retention: old rows deleted", rows=total, before=cutoff,
                     seconds=round(time.perf_counter() - started, 3),
                     longest_chunk_ms=round(longest * 1000, 1),
                     max_loop_lag_ms=round(lag.worst * 1000, 1))
        return total

    async def _prune(self, cutoff: float) -> tuple[int, float]:
        total = 0
        open_incidents = list(self.pipeline.engine.open_incident.values())
        from_at = [(float("-inf"), "")]

        def alerts(limit: int) -> tuple[int, int]:
            seen, deleted, from_at[0] = self.store.prune_alerts(cutoff, limit, from_at[0])
            return seen, deleted

        steps: list[Callable[[int], tuple[int, int]]] = [
            lambda limit: self.store.prune_events(cutoff, limit),
            lambda limit: self.store.prune_mentions(cutoff, limit, open_incidents), alerts]
        longest = 0.0
        for step in steps:
            limit = PRUNE_CHUNK
            while True:
                t = time.perf_counter()
                seen, n = await self.locks.retry(
                    "prune", functools.partial(self._in_tx, functools.partial(step, limit)))
                took = time.perf_counter() - t
                longest = max(longest, took)
                total += n
                if seen < limit:
                    break
                if took > PRUNE_CHUNK_SECONDS:
                    limit = max(PRUNE_CHUNK_MIN, limit // 2)
                elif took < PRUNE_CHUNK_SECONDS / 2:
                    limit = min(PRUNE_CHUNK_MAX, limit * 2)
                await asyncio.sleep(0)  # the loop (ingest, timer, outbox) runs between chunks
                if self.checkpointer is not None:
                    # Not while a pass copies the log, nor past a log's length without
                    # one: both cost the loop a long wait (``monitor.walcheck``).
                    await self.checkpointer.make_room()
        return total, longest

    def _in_tx(self, step: Callable[[], tuple[int, int]]) -> tuple[int, int]:
        with self.store.transaction():
            return step()

    async def prune_loop(self) -> None:
        await asyncio.sleep(PRUNE_FIRST)
        while True:
            try:
                await self.prune()
            except Exception as exc:  # the store is failing: the next pass goes on
                log.warning("retention pass failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(PRUNE_EVERY)

    def publish(self, what: str) -> None:
        """Tell every live view that state changed; a slow view drops, never blocks us."""
        for q in self.listeners:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(what)

    async def timer(self) -> None:
        """Wake at each deadline (or sooner, when a new earlier one is set) and fire it.

        It also wakes every ``CHECK_EVERY`` real seconds to re-read the clock: after a
        jump forward (NTP, a resume) the skipped deadlines fire then, not when the wait
        begun before the jump would have ended.
        """
        while True:
            self._rearm.clear()
            due = self.pipeline.engine.next_due()
            until = due
            if not isinstance(self.clock, SimClock):  # (simulated time cannot jump)
                check = self.clock.now() + CHECK_EVERY * getattr(self.clock, "speed", 1.0)
                until = check if due is None else min(due, check)
            await clock_wait(self.clock, self._rearm, until)
            jump = self.watch.check()
            fired = 0
            if due is not None and self.clock.now() >= due:
                if self.cluster is not None:
                    self.cluster.catch_up(self)  # a peer may have stored the reply
                fired = await self._fire_due()
            if jump:
                self.clock_jumped(jump, fired)
            if fired and self.coalesce:
                # Gather what falls due in the next moment into the next firing: at 250
                # mentions/s a deadline falls due every 4 ms, and firing each alone cost a
                # commit and an outbox pass each. An alert's ``at`` stays its due time.
                # On the engine's clock (``coalesce`` real seconds at its speed), so a
                # simulated clock drives this wait too.
                speed = getattr(self.clock, "speed", 1.0)
                await self.clock.sleep_until(self.clock.now() + self.coalesce * speed)

    def clock_jumped(self, seconds: float, fired: int) -> None:
        """Log and count a jump of the clock (``fired``: alerts the catch-up raised)."""
        self.metrics.on_clock_jump(seconds)
        log.warning("clock jumped; deadlines it skipped fired at once, each once, in order",
                    jump_s=round(seconds, 1), direction="forward" if seconds > 0 else
                    "backward", alerts_fired=fired,
                    pending_deadlines=self.pipeline.engine.pending())

    def http_token(self) -> tuple[str, bool]:
        """The API/dashboard token, and whether it was made up for this run (none is
        configured): then its address is printed once the server listens."""
        try:
            return resolve_secret(self.config.http.token), False
        except SecretError:
            return secrets.token_urlsafe(18), True

    def readiness(self) -> list[str]:
        """Why the daemon is not ready (``/readyz``); empty when it is."""
        problems = [] if self.started else ["starting: state not rebuilt yet"]
        for source in self.sources:
            subscribed = getattr(source, "subscribed", None)
            if isinstance(subscribed, asyncio.Event) and not subscribed.is_set():
                problems.append(f"source {source.name}: not connected")
        try:
            with self.store.transaction():
                self.store.set_meta("ready_probe", repr(self.clock.now()))
        except Exception as exc:  # any store error means not ready; the probe says which
            problems.append(f"store: not writable ({type(exc).__name__}: {exc})")
        return problems

    def is_ready(self) -> bool:
        return self.started and not self.readiness()

    def status_line(self) -> str:
        """One line for ``systemctl status`` (sd_notify STATUS=)."""
        stats, engine = self.pipeline.stats, self.pipeline.engine
        return (f"posts {stats.posts}, mentions {stats.mentions}, alerts {stats.alerts}, "
                f"open incidents {len(engine.open_incident)}, "
                f"pending deadlines {engine.pending()}")

    async def reload(self, new_config: Config) -> bool:
        """Swap brands, keywords, routing and scoring in without a restart (SIGHUP)."""
        from monitor.reload import reload_config

        self.notifier.notify(RELOADING=1, STATUS="reloading config")
        try:
            return await reload_config(self, new_config)
        finally:
            self.notifier.notify(READY=1, STATUS=self.status_line())

    async def run(self, sources: Sequence[Source], stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order within a bounded time."""
        gc.callbacks.append(self.gc_watch.on_gc)
        thresholds = gc.get_threshold()
        gc.set_threshold(max(GC_YOUNG, thresholds[0]), *thresholds[1:])
        try:
            await self._run(sources, stop)
        finally:
            gc.set_threshold(*thresholds)
            gc.callbacks.remove(self.gc_watch.on_gc)
            gc.unfreeze()  # (a process that goes on, as the tests', collects all again)

    async def _run(self, sources: Sequence[Source], stop: asyncio.Event) -> None:
        self.store.drop_snapshot_files()  # left by a child that was never recorded
        async with self._writing("start"):
            if self.cluster is not None:
                self.cluster.start()  # claim leases first: the rebuild pages for those only
            unsent = self.pipeline.rebuild(self._snapshot_keep()[0])
            pipeline = self.pipeline
            if not pipeline.restored_from or pipeline.config_changed:
                # The config in force from here on starts with a snapshot: the events
                # after it are handled under it, and a restart feeds them again under it.
                # (Events fed again from an older one: the periodic snapshot soon covers.)
                self.take_snapshot()
            else:
                self.events_since_snapshot = pipeline.replayed
        self.gc_watch.freeze()  # the rebuilt state: long-lived (see ``GcWatch``)
        anchor = getattr(self.clock, "anchor", None)
        if callable(anchor):
            anchor()  # a demo clock starts now, not when the (slow) start-up began
        self.watch = ClockWatch(self.clock)  # measured from here: the anchor is no jump
        await self._fire_due()
        if unsent:
            log.info("sending alerts left unsent before the restart", count=len(unsent))
        runner = None
        if self.config.http.enabled:
            token, made_up = self.http_token()
            runner = await serve(build_app(self, token), self.config.http)
            if made_up:  # only now: a port that could not be bound must not be advertised
                scheme = "https" if self.config.http.tls else "http"
                print(f"crisismon: no API token configured ({self.config.http.token}); for "
                      f"this run: {scheme}://{self.config.http.listen}/dashboard?token={token}",
                      file=sys.stderr, flush=True)
        async with asyncio.TaskGroup() as tg:
            source_tasks = [tg.create_task(s.run(self), name=f"source:{s.name}")
                            for s in sources]
            timer = tg.create_task(self.timer(), name="timer")
            workers = [tg.create_task(self.outbox.run(name), name=f"outbox:{name}")
                       for name in self.outbox.channels]
            self.outbox.notify()
            self.sources = sources
            ops = [tg.create_task(self.metrics.probe_loop(), name="loop-lag"),
                   tg.create_task(self.outbox.run_repeats(), name="outbox:repeats"),
                   tg.create_task(self.snapshot_loop(), name="snapshots"),
                   tg.create_task(self.prune_loop(), name="retention"),
                   tg.create_task(self.notifier.watchdog(self.status_line), name="watchdog")]
            if Checkpointer.applies(self.store):  # the WAL copied on another core
                self.checkpointer = Checkpointer(self.store)
                ops.append(tg.create_task(self.checkpointer.run(), name="checkpoint"))
            if self.config.digests:  # scheduled digests (monitor.digests), on self.clock
                ops.append(tg.create_task(run_digests(self), name="digests"))
            if self.cluster is not None:
                ops += [tg.create_task(self.cluster.run_leases(self), name="leases"),
                        tg.create_task(self.cluster.run_catch_up(self), name="catch-up")]
            self.started = True
            self.notifier.notify(READY=1, STATUS=self.status_line())
            await stop.wait()
            log.info("stopping", reason=self.stop_reason())
            self.notifier.notify(STOPPING=1, STATUS="stopping: flushing the outbox")
            for task in ops:
                task.cancel()
            for task in source_tasks:
                task.cancel()
            timer.cancel()
            for task in workers:
                task.cancel()
        if runner is not None:
            await runner.cleanup()
        try:  # the next start then feeds no event again; tried once: a stop never waits
            if self.events_since_snapshot:  # (deadlines fired since are known by alert id)
                self._snapshot_tx()
        except Exception as exc:  # locked or failing: the next start feeds more events
            log.warning("no engine snapshot at shutdown", error=f"{type(exc).__name__}: {exc}")
        await self.outbox.flush(FLUSH_TIMEOUT)
        if self.cluster is not None:
            self.cluster.release()  # after the flush: a peer takes over at once


class GcWatch:
    """The cyclic garbage collector's pauses, and what it walks.

    A full collection walks every object it tracks with the loop stopped: with 100,000
    open reply clocks, ~0.1-0.4 s (``bench/snapshot_pause.py``); and while the engine
    grows it comes each time a quarter more objects have survived, so under a firehose
    the pauses grow with the state. So what is alive is frozen (``gc.freeze``: the
    collector walks only what came after) every ``GC_FREEZE_EVERY`` s and at each forked
    snapshot (there it also keeps the collector from copying the pages the child shares).
    Nothing frozen is lost to reference counting (the engine's mentions are freed that way
    when forgotten: they form no cycles, see tests/component/test_snapshot_files.py; live,
    the collector found no cyclic garbage at all: ``gc_garbage`` 0 in the snapshot log
    lines of a 1,000 posts/s run), but an object frozen alive that later becomes part of a
    garbage cycle is only collected after a thaw: everything is thawed every
    ``GC_THAW_EVERY`` s, after which the next full collection walks it all once."""

    def __init__(self) -> None:
        self.worst = 0.0
        """The longest collection since ``take``, in seconds."""
        self.full = 0
        """Full collections since ``take``."""
        self.garbage = 0
        """Objects the collector freed (cyclic garbage) since ``take``."""
        self._started = 0.0
        self.thawed = self.frozen = time.monotonic()

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` entry (two clock reads a collection)."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.worst = max(self.worst, time.perf_counter() - self._started)
        self.garbage += info.get("collected", 0)
        if info.get("generation") == 2:
            self.full += 1

    def take(self) -> tuple[float, int, int]:
        """(worst pause in s, full collections, objects freed) since the last ``take``."""
        out = self.worst, self.full, self.garbage
        self.worst, self.full, self.garbage = 0.0, 0, 0
        return out

    def freeze(self) -> None:
        gc.freeze()
        self.frozen = time.monotonic()

    def tick(self) -> None:
        """Called every second or so: freeze, or thaw, when it is time."""
        if not self.thaw_if_due() and time.monotonic() - self.frozen >= GC_FREEZE_EVERY:
            self.freeze()

    def thaw_if_due(self) -> bool:
        """Thaw everything frozen if ``GC_THAW_EVERY`` has passed since the last thaw."""
        if time.monotonic() - self.thawed < GC_THAW_EVERY:
            return False
        gc.unfreeze()
        self.thawed = time.monotonic()
        return True


class LagWatch:
    """How late the event loop runs while something else works in it (``worst``, s)."""

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.every)
            self.worst = max(self.worst, time.monotonic() - start - self.every)


def make_clock(config: Config, store: Store, feeds: Sequence[FeedSource]) -> Clock:
    """Wall time, unless a recorded feed drives the demo: then scaled feed time."""
    if not feeds:
        return WallClock()
    saved = store.get_meta(CLOCK_META)
    if saved is not None:  # (a restart: the feeds are not read before the state is back)
        start = float(saved)
    elif starts := [t for f in feeds if (t := f.next_time) is not None]:
        start = min(starts)
    else:
        start = max((f.events[-1].created_at for f in feeds if f.events), default=0.0)
    speed = next(s.speed for s in config.sources if isinstance(s, FeedSourceConfig))
    return ScaledClock(start, speed)


def build_channels(config: Config) -> list[Sender]:
    channels: list[Sender] = [AlertLogChannel(config.resolve(config.alerts.log), config.tz)]
    if config.alerts.terminal and not logs_on_stdout(config.log):
        # Imported here: a channel module loads only when that channel is in use.
        from alerts.channels.terminal import TerminalChannel

        channels.append(TerminalChannel("terminal", sys.stdout, tz=config.tz))
    elif config.alerts.terminal:  # service mode: stdout carries the log lines
        log.info("terminal alert channel off: log lines go to stdout (log.stream)")
    channels.extend(build_paging_channels(config))  # [[channels]]; a missing secret: ConfigError
    return channels


async def run_daemon(config: Config, stop: asyncio.Event | None = None,
                     config_path: str | Path | None = None) -> int:
    """``crisismon run``. Returns the exit code. SIGHUP re-reads ``config_path``."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    running: list[Daemon] = []
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        if not running or config_path is None:
            log.warning("SIGHUP ignored", reason="still starting" if config_path else
                        "no config file to re-read")
            return
        from monitor.reload import reload_from

        task = asyncio.ensure_future(reload_from(running[0], config_path))
        reloads.add(task)  # keep a reference until it is done
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    install_patches()  # paho's classes, made cheaper (monitor.mqttread); never on import
    store = open_store(config)
    channels = build_channels(config)
    recorder = None
    try:
        feeds: list[FeedSource] = []
        for i, sc in enumerate(config.sources):
            if isinstance(sc, FeedSourceConfig):
                name = sc.name or f"feed{i}:{sc.path}"
                path = config.resolve(sc.path)
                if not path.is_file():
                    log.error("feed file not found", source=name, path=str(path))
                    return 2
                feeds.append(FeedSource(path, WallClock(), store.get_cursor(name), name))
        clock = make_clock(config, store, feeds)
        for f in feeds:
            f.clock = clock
        # Live sources poll on real time, even when a demo feed runs the engine faster.
        recorder = build_recorder(config, WallClock())  # closed below, with the store
        live = build_sources(config, store, WallClock(), recorder)
        live += command_sources(config, clock)  # acks over MQTT, stamped on the engine clock
        pipeline = build_pipeline(config, store, [c.name for c in channels])
        daemon = Daemon(config, store, pipeline, clock, channels, recorder=recorder)
        if config.store.backend == "postgres":  # several instances may share the work
            from monitor.cluster import build_cluster  # psycopg is an optional extra

            daemon.cluster = build_cluster(daemon)
        daemon.stop_reason = lambda: f"{signals[0].name} received" if signals else \
            "asked to stop"
        running.append(daemon)
        log.info("crisismon started", brands=[b.name for b in config.brands],
                 sources=[s.name for s in (*feeds, *live)], store=store.path)
        await daemon.run([*feeds, *live], stop)
        log.info("crisismon stopped cleanly")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for task in reloads:
            task.cancel()
        if running:
            running[0].notifier.close()
        if recorder is not None:
            recorder.close()
        store.close()
        for c in channels:
            close = getattr(c, "close", None)
            if callable(close):
                close()
        await aclose_channels(channels)
