"""The durable outbox: every alert is in the store before any channel tries to send it.

One worker per channel takes that channel's pending deliveries, oldest first, and
sends each at least once. Before a send, the noise stages (:mod:`alerts.noise`) may
silence it, defer it past quiet hours, or hold it for a summary; held pages go out as
one message when their group is due. A failure that can be retried waits with jittered
exponential backoff (or the channel's Retry-After); a dead channel delays only its own
queue. After a restart, whatever was pending is sent.

Threads: a message about an incident goes out as an update of that incident's thread
on its channel (:class:`~alerts.channels.base.Thread`, kept in the store by
:class:`~alerts.ledger.ThreadBook`), so a mail replies to the incident's first page and
a Slack message lands in its thread, also after a restart.

Repeats: once a page of level >= 1 is out on a paging channel, it is re-sent every
``repeat_every`` until its subject is settled (acked, answered, closed). Each repeat
is its own delivery with the idempotency key ``<alert id>-r<n>``, stable across retries.
Every attempt and verdict is written to the audit log.

A store locked by another process (``monitor.locks``) pauses the workers, never kills
them; once a send has succeeded, recording it is retried until it is stored, so a lock
never makes a delivered alert go out again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import random
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import structlog

from alerts.ack import repeat_id
from alerts.audit import AuditLog
from alerts.channels.base import Thread
from alerts.ledger import SendLog, ThreadBook
from alerts.noise import BUILT_IN, Outcome, Page, Stages, Verdict, summary_alert
from monitor.clock import Clock
from monitor.clock import wait as clock_wait
from monitor.locks import StoreLocks, is_locked, retry_delay
from monitor.retry import FailureLog, backoff
from monitor.store import PendingDelivery, Store
from rules.records import Alert, AlertType

log = structlog.get_logger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_MAX = 60.0
"""Longest wait between tries of a failing channel. Short because the reply SLA is minutes:
a receiver back from an outage gets its queue within a minute (a 5-minute cap made the
10-minute webhook outage test catch up only 169 s after the receiver returned)."""
REFUSED_GROUP_RETRY = 300.0
"""A summary the channel refused outright (4xx) is tried again this much later."""


class Sender(Protocol):
    """What the outbox needs of a channel (see :class:`alerts.channels.base.Channel`).

    A channel may also offer ``async send_batch(items) -> results``, ``items`` a list of
    ``(alert, thread or None)``: the outbox then hands it every due page of a pass at
    once, and the channel may have them all in flight together (MQTT: publishes
    pipelined on one connection; the alert log: one write and one fsync). One result
    per item, in order: the provider's ref (or None) when it went out, the exception
    when it did not.
    """

    name: str

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None: ...


BATCH_MAX = 2000
"""Pages per pass of a channel that sends in batches (``send_batch``) at most. A pass costs
a few event-loop turns whatever its size (the PUBACKs, the fsync, the commit), and under a
firehose each turn also stores a batch of up to 1,000 posts: with 200 a pass, the MQTT
channel sent ~200 pages/s behind 5,000 posts/s while 1,250 mentions/s came in. A pass takes
what is due, so at a steady rate passes stay small (and quick); the cap bounds one pass
after an outage (~0.2 s of sending at 10,000/s)."""


WINDOWS_IN_FLIGHT = 3
"""Windows a batching channel may have in flight at once (the daemon's outbox; see
``Outbox.windows``). With one, a pass claimed its window, sent it, waited for every
acknowledgement (MQTT's PUBACKs, the alert log's fsync) and recorded it before it claimed
the next: alerts raised meanwhile waited a whole round trip plus the recording, and under
a firehose that was most of raised -> delivered (p99 670 ms on MQTT at 5,000 posts/s).
With more, the next window is claimed and sent as soon as it is due, while the earlier
ones' acknowledgements come in; three is enough to keep one always on the wire, and
bounds what a crash re-sends (at-least-once) to three windows."""


def _about(alert: Alert) -> contextlib.AbstractContextManager[None]:
    """Log context while handling ``alert``: every line names its post and brand."""
    return structlog.contextvars.bound_contextvars(post_id=alert.post_id, brand=alert.brand)


def _thread_note(thread: Thread | None, detail: str = "") -> str:
    """The audit detail of a delivery: which update of which incident's thread it was."""
    if thread is None:
        return detail
    where = f"incident {thread.incident_id} update {thread.update}"
    return f"{detail}; {where}" if detail else where


def wire_alert(alert: Alert, rep: int) -> Alert:
    """What a channel is given: the alert, or for a repeat its numbered reminder."""
    if rep == 0:
        return alert
    return replace(alert, id=repeat_id(alert.id, rep), title=f"（第{rep}次提醒）{alert.title}")


class Outbox:
    """Delivers stored alerts to channels until each is delivered (or finally refused)."""

    def __init__(self, store: Store, channels: Mapping[str, Sender], clock: Clock,
                 seed: int | None = None, *, stages: Stages | None = None,
                 repeat_every: float = 0.0, repeat_max: int = 0,
                 settled: Callable[[Alert], bool] | None = None,
                 locks: StoreLocks | None = None, windows: int = 1) -> None:
        self.store = store
        self.locks = locks or StoreLocks()
        self.channels = dict(channels)
        self.clock = clock
        self.stages = stages or Stages.none()
        self.repeat_every = repeat_every
        self.repeat_max = repeat_max
        self.settled = settled or (lambda _alert: True)
        self.audit = AuditLog(store)
        self.threads = ThreadBook(store)
        # The rate limits' window lives in the store: a restart must neither forget what
        # was sent in the last minute nor page past the limit.
        self.stages.limiter.bind(SendLog(store))
        self._wake = {name: asyncio.Event() for name in self.channels}
        self._repeat_wake = asyncio.Event()
        self._repeat_at: float | None = None
        """When the repeat loop wakes next by itself (None: not until woken): a schedule
        armed for later needs no pass of its own."""
        self._rng = random.Random(seed)
        self.failures: dict[str, int] = {name: 0 for name in self.channels}
        self.sent: dict[str, int] = {name: 0 for name in self.channels}
        self._health: dict[str, FailureLog] = {}
        """Channel -> its run of failures: logged when it starts and when it ends."""
        self._group_failures: dict[tuple[str, str], int] = {}
        self._paused: dict[str, float] = {}
        """Channel -> until when it rests after a retryable failure: a receiver that is
        down is not hammered with the rest of the queue, and order is kept."""
        self.windows = max(1, windows)
        """Windows a batching channel may have in flight at once (``WINDOWS_IN_FLIGHT``;
        1: each is sent and recorded before the next is claimed, as a replay does)."""
        self._flights: dict[str, collections.deque[_Flight]] = {
            name: collections.deque() for name in self.channels}
        """Channel -> its windows handed to ``send_batch`` and not yet recorded, oldest
        first: they are recorded in that order."""
        self._flying: dict[str, set[tuple[str, int]]] = {name: set() for name in self.channels}
        """Channel -> ``(alert id, rep)`` of every delivery in those windows. They are
        still pending in the store until recorded, so the next claim passes them over:
        never claimed twice, never sent twice."""
        self._flying_upto: dict[str, int] = {}
        """Channel -> the highest alert seq among its deliveries in flight (while any):
        the store reads the rows up to it without their alert (``pending_deliveries``)."""
        self._tips: dict[str, dict[str, tuple[Thread, Alert]]] = {
            name: {} for name in self.channels}
        """Channel -> incident -> the last thread update handed over while windows are in
        flight: the store's thread row moves only when a window is recorded, so the next
        window continues from here (forgotten once none is in flight)."""

    def notify(self) -> None:
        """New alerts are in the store: wake every worker."""
        for event in self._wake.values():
            event.set()

    def woken(self) -> bool:
        """Whether a worker was told of new alerts and has not yet taken them (a
        simulated clock's driver lets it run before moving time on)."""
        return any(event.is_set() for event in self._wake.values())

    def failing(self) -> set[str]:
        """Channels whose last try failed (logged once as "channel failing")."""
        return {name for name, health in self._health.items() if health.failing}

    async def run(self, name: str) -> None:
        """Worker loop for one channel; runs until cancelled."""
        wake = self._wake[name]
        locked = 0
        while True:
            wake.clear()
            try:
                await self.drain(name)
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                # Nothing is half-recorded: a try's outcome is written in one transaction
                # (after a good send, retried until stored). Pause, then pass again.
                self.locks.locked(f"outbox:{name}", exc)
                await asyncio.sleep(retry_delay(locked))
                locked += 1
                continue
            if locked:
                self.locks.unlocked(f"outbox:{name}")
                locked = 0
            # Until woken (new alerts) or the next retry, deferral or group flush is due,
            # on the clock those times are computed with: a simulated clock drives this
            # loop exactly as the wall clock does live.
            await clock_wait(self.clock, wake, self.next_try(name))

    def next_try(self, name: str) -> float | None:
        """When channel ``name`` next has something to do (None: nothing queued)."""
        retry = self.store.next_retry(name)
        paused = self._paused.get(name)
        if retry is None or paused is None:
            return retry
        return max(retry, paused)

    def batched(self, channel: Sender) -> bool:
        """Whether ``channel``'s due pages go out together (``send_batch``).

        Not on a rate-limited channel: its limiter judges each page against the sends
        recorded before it, so pages must be sent (and recorded) one at a time there."""
        return callable(getattr(channel, "send_batch", None)) and \
            channel.name not in self.stages.limiter.limits

    async def drain(self, name: str) -> int:
        """Try every delivery of ``name`` that is due now; return how many got through."""
        channel = self.channels[name]
        batched = self.batched(channel)
        if batched and self.windows > 1:
            return await self._drain_pipelined(channel)
        sent = 0
        while True:
            now = self.clock.now()
            if self._paused.get(name, now) > now:
                return sent
            sent += await self._flush_groups(channel, now)
            limit = BATCH_MAX if batched else 100
            batch = self.store.pending_deliveries(name, now, limit=limit)
            if not batch:
                return sent
            last = len(batch) < limit  # nothing else due now: no second query for it
            window: list[PendingDelivery] = []
            for item in batch:
                if not self._to_send(item, name, now):
                    continue
                if batched:
                    window.append(item)
                    continue
                if not await self._try(channel, item):
                    return sent  # keep order: the rest waits for this one's retry
                sent += 1
            if window:
                went, blocked = await self._send_window(channel, window)
                sent += went
                if blocked:
                    return sent  # a retryable failure: the channel rests (``_paused``)
            if last and self.clock.now() == now:
                return sent

    def _to_send(self, item: PendingDelivery, name: str, now: float) -> bool:
        """Whether ``item`` goes out now; if not, its fate is recorded here: a repeat of a
        settled alert is cancelled, the noise stages silence, defer or hold a page."""
        if item.rep and self.settled(item.alert):
            self._cancel(item, now)
            return False
        # A digest is a report someone scheduled, not a page: no silence, quiet hours,
        # grouping or rate limit applies to it.
        verdict = None if item.alert.type is AlertType.DIGEST else \
            self.stages.judge(Page(item.alert, name, item.rep), now)
        if verdict is not None:
            self._apply(item, verdict, now)
            return False
        return True

    def _cancel(self, item: PendingDelivery, now: float) -> None:
        """A repeat whose alert was acked or answered meanwhile: never sent."""
        with self.store.transaction():
            self.store.mark_judged(item.alert.id, item.channel, item.rep, "cancelled", None)
            self.audit.delivery(now, repeat_id(item.alert.id, item.rep), item.channel,
                                item.rep, "cancelled", "acked or answered")

    def _apply(self, item: PendingDelivery, verdict: Verdict, now: float) -> None:
        with _about(item.alert), self.store.transaction():
            self._judged(item, verdict, now)

    def _thread(self, name: str, message: Alert) -> Thread | None:
        """Where ``message`` stands in its incident's thread on channel ``name``."""
        if not message.incident_id or name in BUILT_IN:
            return None
        return self.threads.get(name, message.incident_id)

    async def _deliver(self, channel: Sender, message: Alert,
                       thread: Thread | None) -> str | None:
        # A message outside any incident is sent as send(alert): the simplest channel
        # (a test double, a recorder) need not know about threads.
        if thread is None:
            return await channel.send(message)
        return await channel.send(message, thread)

    def _judged(self, item: PendingDelivery, verdict: Verdict, now: float) -> None:
        name, aid = item.channel, item.alert.id
        if verdict.outcome is Outcome.SILENCED:
            self.store.mark_judged(aid, name, item.rep, "silenced", None, note=verdict.reason)
        elif verdict.outcome is Outcome.DEFERRED:
            self.store.mark_judged(aid, name, item.rep, "pending", verdict.until,
                                   note=verdict.reason)
        else:
            self.store.mark_judged(aid, name, item.rep, "held", verdict.until, verdict.group,
                                   note=verdict.reason)
        self.audit.delivery(now, repeat_id(aid, item.rep), name, item.rep, str(verdict.outcome),
                            verdict.reason)
        log.debug("page judged", channel=name, alert_id=aid, outcome=str(verdict.outcome),
                  reason=verdict.reason)

    async def _flush_groups(self, channel: Sender, now: float) -> int:
        """Send each held group that is due as one message (one page: the page itself)."""
        name = channel.name
        sent = 0
        for grp in self.store.due_groups(name, now):
            room = self.stages.limiter.room_at(name, now)
            if room > now:  # a summary is a message too: it waits for the rate limit
                self.store.defer_group(name, grp, room)
                continue
            held = []
            for item in self.store.held(name, grp):
                if item.rep and self.settled(item.alert):
                    self._cancel(item, now)  # acked while held: the repeat is moot
                else:
                    held.append(item)
            if not held:
                continue
            alerts = [wire_alert(i.alert, i.rep) for i in held]
            message = alerts[0] if len(alerts) == 1 else summary_alert(alerts, grp, name)
            thread = self._thread(name, message)
            try:
                ref = await self._deliver(channel, message, thread)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a channel must never take the daemon down
                key = (name, grp)
                n = self._group_failures.get(key, 0)
                self._group_failures[key] = n + 1
                retryable = getattr(exc, "retryable", True)
                retry_after = getattr(exc, "retry_after", None)
                delay = REFUSED_GROUP_RETRY if not retryable else \
                    retry_after if retry_after is not None else self._backoff(n)
                with self.store.transaction():  # locked: nothing written, tried again
                    self.store.defer_group(name, grp, now + delay, f"{type(exc).__name__}: {exc}")
                    self.audit.delivery(now, message.id, name, 0,
                                        "retrying" if retryable else "failed", str(exc)[:200])
                if retryable:
                    self._paused[name] = now + delay
                self._failing(name, message.id, exc, delay)
                continue
            self._group_failures.pop((name, grp), None)
            # Sent: it must be recorded, or a retry would send it twice. Wait out a lock.
            await self.locks.retry(f"outbox:{name}", functools.partial(
                self._summarised, name, held, message, thread, ref, now))
            self.sent[name] += 1
            self._recovered(name)
            sent += 1
        return sent

    async def _try(self, channel: Sender, item: PendingDelivery) -> bool:
        with _about(item.alert):  # the channel's own log lines name the post too
            return await self._send(channel, item)

    async def _send(self, channel: Sender, item: PendingDelivery) -> bool:
        name, alert, rep = channel.name, item.alert, item.rep
        wire = wire_alert(alert, rep)
        thread = self._thread(name, wire)
        try:
            ref = await self._deliver(channel, wire, thread)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a channel must never take the daemon down
            return not self._failed(name, item, wire, exc)  # a final refusal doesn't block
        now = self.clock.now()
        # Sent: it must be recorded, or a retry would send it twice. Wait out a lock.
        await self.locks.retry(f"outbox:{name}", functools.partial(
            self._delivered, name, alert, rep, wire, thread, ref, now))
        self.sent[name] += 1
        self._recovered(name)
        return True

    def _failed(self, name: str, item: PendingDelivery, wire: Alert, exc: Exception) -> bool:
        """Record a failed try; True if it will be retried (the channel then rests)."""
        now = self.clock.now()
        retryable = getattr(exc, "retryable", True)
        retry_after = getattr(exc, "retry_after", None)
        delay = retry_after if retry_after is not None else self._backoff(item.attempts)
        next_try = now + delay if retryable else None
        with self.store.transaction():  # locked: nothing written, the worker tries again
            self.store.mark_failed(item.alert.id, name, f"{type(exc).__name__}: {exc}",
                                   next_try, item.rep)
            self.audit.delivery(now, wire.id, name, item.rep,
                                "retrying" if retryable else "failed",
                                f"{type(exc).__name__}: {exc}")
        if next_try is not None:
            self._paused[name] = max(next_try, self._paused.get(name, 0.0))
        self.failures[name] += 1
        self._failing(name, wire.id, exc, delay if retryable else None)
        return retryable

    async def _send_window(self, channel: Sender,
                           items: list[PendingDelivery]) -> tuple[int, bool]:
        """Send ``items`` in one ``send_batch`` and record every outcome.

        Returns (how many went out, whether a retryable failure now blocks the channel).
        Every page that went out is recorded, in one transaction, even when one before it
        failed: it must not go out twice. A failed page is retried after the backoff, so
        on such a channel a failure can reorder pages; at-least-once is kept either way.
        """
        wires, threads = self._wire_window(channel.name, items, {})
        send_batch = channel.send_batch  # type: ignore[attr-defined]
        results = await send_batch(list(zip(wires, threads, strict=True)))
        return await self._record_window(channel, items, wires, threads, results)

    def _wire_window(self, name: str, items: list[PendingDelivery],
                     last: dict[str, tuple[Thread, Alert]]
                     ) -> tuple[list[Alert], list[Thread | None]]:
        """What a window hands the channel: each page's wire form and thread update.
        ``last``: incident -> the update before (updated here)."""
        wires: list[Alert] = []
        threads: list[Thread | None] = []
        for item in items:
            wire = wire_alert(item.alert, item.rep)
            thread = None
            if wire.incident_id and name not in BUILT_IN:
                prev = last.get(wire.incident_id)
                # The store's thread row moves only when the window is recorded, so a
                # second message of one incident continues from the first in memory.
                thread = self.threads.get(name, wire.incident_id) if prev is None else \
                    Thread(wire.incident_id, prev[0].update + 1, prev[0].root or prev[1],
                           prev[0].ref)
                last[wire.incident_id] = (thread, wire)
            wires.append(wire)
            threads.append(thread)
        return wires, threads

    async def _record_window(self, channel: Sender, items: list[PendingDelivery],
                             wires: list[Alert], threads: list[Thread | None],
                             results: list[str | BaseException | None],
                             recover: bool = True) -> tuple[int, bool]:
        """Record the outcome of every page of a window (see ``_send_window``);
        ``recover``: whether a window without failures ends a run of them."""
        name = channel.name
        now = self.clock.now()
        done = []
        failed: list[tuple[PendingDelivery, Alert, Exception]] = []
        for item, wire, thread, res in zip(items, wires, threads, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res  # cancelled or exiting: not a channel failure
                failed.append((item, wire, res))
            else:
                done.append((item, wire, thread, res))
        if done:
            # Sent: they must be recorded (first), or a retry would send them twice. Wait
            # out a lock.
            await self.locks.retry(f"outbox:{name}", functools.partial(
                self._delivered_all, name, done, now))
            self.sent[name] += len(done)
        blocked = False
        for item, wire, exc in failed:
            blocked |= self._failed(name, item, wire, exc)
        if done and not blocked and recover:
            self._recovered(name)
        return len(done), blocked

    # ------------------------------------------------------------ windows in flight
    async def _drain_pipelined(self, channel: Sender) -> int:
        """``drain`` for a batching channel with up to ``windows`` windows in flight.

        A window is claimed (what is due now, passing over the deliveries already in
        flight), judged and handed to ``send_batch`` as soon as there is room, without
        waiting for the acknowledgements of the windows before it; outcomes are recorded
        window by window in the order they were claimed, each once its ``send_batch``
        returned. Order per channel: windows go to the channel in claim order (oldest
        alert first) and a batching channel keeps that order on the wire (MQTT issues a
        window's publishes after the one before it; the alert log writes its windows in
        turn), so pages arrive in the order they were raised; as with one window, only a
        failed page retried later comes after pages raised after it. Returns once
        nothing is due and nothing is in flight (a retryable failure: once the windows in
        flight are recorded), with how many got through.
        """
        name = channel.name
        wake = self._wake[name]
        flights = self._flights[name]
        sent = 0
        blocked = False
        # Cancelled (a shutdown) or failed, a drain leaves its windows in flight as they
        # are: the next drain (the shutdown's flush, the worker's next pass) records them
        # when they come back, first, and sends none of them again.
        while True:
            while flights and flights[0].task.done():
                # A window sent along with one that failed does not say the channel is
                # back: it rests all the same.
                went, failing = await self._land(channel, flights[0], recover=not blocked)
                sent += went
                blocked |= failing
            now = self.clock.now()
            room = len(flights) < self.windows and not blocked and \
                self._paused.get(name, now) <= now
            if room:
                # Cleared before the query: whatever is stored after it wakes us.
                wake.clear()
                sent += await self._flush_groups(channel, now)
                window, full = self._claim(name, now)
                if window:
                    self._launch(channel, window)
                    continue
                if full:  # a whole claim judged away (held, silenced...): more is due
                    continue
            if not flights:
                self._tips[name].clear()  # everything handed over is recorded
                return sent
            if not room:
                wake.clear()  # nothing can be claimed before a window comes back
            # A window back (its done callback sets ``wake``) or new alerts.
            await wake.wait()

    def _claim(self, name: str, now: float) -> tuple[list[PendingDelivery], bool]:
        """Take the deliveries of ``name`` due now and not in flight, apply the noise
        stages, and return (the pages to send, whether the claim was full)."""
        flying = self._flying[name]
        batch = self.store.pending_deliveries(name, now, limit=BATCH_MAX, skip=flying,
                                              skip_upto=self._flying_upto.get(name, 0))
        window = [item for item in batch if self._to_send(item, name, now)]
        return window, len(batch) >= BATCH_MAX

    def _launch(self, channel: Sender, items: list[PendingDelivery]) -> None:
        """Hand ``items`` to ``send_batch`` in a task of its own, and mark them in flight."""
        name = channel.name
        wires, threads = self._wire_window(name, items, self._tips[name])
        send_batch = channel.send_batch  # type: ignore[attr-defined]
        task = asyncio.ensure_future(send_batch(list(zip(wires, threads, strict=True))))
        wake = self._wake[name]
        task.add_done_callback(lambda _task: wake.set())
        self._flying[name].update((i.alert.id, i.rep) for i in items)
        self._flying_upto[name] = max(self._flying_upto.get(name, 0),
                                      max(i.seq for i in items))
        self._flights[name].append(_Flight(items, wires, threads, task))

    async def _land(self, channel: Sender, flight: _Flight,
                    recover: bool) -> tuple[int, bool]:
        """Record the oldest window, whose ``send_batch`` returned; only then are its
        deliveries out of flight (claimable again if they failed)."""
        name = channel.name
        task = flight.task
        if task.cancelled() or task.exception() is not None:
            # Nothing known of its pages: all still pending, claimable again. Cancelled:
            # by the loop's end; a channel's own error ends the drain, as it always did.
            self._out_of_flight(name, self._flights[name].popleft())
            if not task.cancelled():
                raise task.exception()  # type: ignore[misc]
            return 0, False
        results = task.result()
        try:
            return await self._record_window(channel, flight.items, flight.wires,
                                             flight.threads, results, recover)
        finally:
            # Recorded (or the store failed: the worker stops): out of flight either way.
            self._out_of_flight(name, self._flights[name].popleft())

    def _out_of_flight(self, name: str, flight: _Flight) -> None:
        flying = self._flying[name]
        flying.difference_update(flight.keys())
        if not flying:
            self._flying_upto.pop(name, None)

    def _delivered_all(self, name: str,
                       done: list[tuple[PendingDelivery, Alert, Thread | None, str | None]],
                       now: float) -> None:
        """Record a window's sends in one transaction (all of it or none): what
        ``_delivered`` records for each, with one statement per table for the lot (a
        statement per page cost more than the send itself on the alert log)."""
        with self.store.transaction():
            self.store.mark_delivered_many(
                name, [(i.alert.id, i.rep, i.seq) for i, *_ in done], now)
            self.audit.deliveries(now, name, [(wire.id, item.rep, _thread_note(thread), item.seq)
                                              for item, wire, thread, _ref in done],
                                  "delivered")
            for item, _wire, _thread, _ref in done:
                self.stages.limiter.record(name, now)
                self._arm(item.alert, item.rep, name, now)
            self.threads.delivered_many(name, [(thread, wire, ref) for _i, wire, thread, ref
                                               in done if thread is not None], now)

    def _delivered(self, name: str, alert: Alert, rep: int, wire: Alert,
                   thread: Thread | None, ref: str | None, now: float) -> None:
        """Record a send that went through (state, rate window, thread, audit, repeats):
        all the bookkeeping of one send, or none."""
        with self.store.transaction():
            self.store.mark_delivered(alert.id, name, now, rep)
            self.stages.limiter.record(name, now)
            if thread is not None:
                self.threads.delivered(name, thread, wire, ref, now)
            self.audit.delivery(now, wire.id, name, rep, "delivered", _thread_note(thread))
            self._arm(alert, rep, name, now)

    def _summarised(self, name: str, held: list[PendingDelivery], message: Alert,
                    thread: Thread | None, ref: str | None, now: float) -> None:
        """Record a held group that went out as one message, in one transaction."""
        with self.store.transaction():
            self.store.mark_summarised(held, now)
            self.stages.limiter.record(name, now)
            if thread is not None:
                self.threads.delivered(name, thread, message, ref, now)
            for item in held:
                self.audit.delivery(now, repeat_id(item.alert.id, item.rep), name, item.rep,
                                    "summarised", f"in {message.id}")
                self._arm(item.alert, item.rep, name, now)
            self.audit.delivery(now, message.id, name, 0, "delivered",
                                _thread_note(thread, f"summary of {len(held)}"
                                             if len(held) > 1 else ""))

    def _arm(self, alert: Alert, rep: int, channel: str, now: float) -> None:
        """After a page is out on a paging channel: start its repeat schedule."""
        if rep == 0 and self.repeat_every > 0 and self.repeat_max > 0 and alert.level >= 1 \
                and channel not in BUILT_IN:
            self.store.arm_repeat(alert.id, now + self.repeat_every)
            if self._repeat_at is None or now + self.repeat_every < self._repeat_at:
                self._repeat_wake.set()

    def _backoff(self, attempts: int) -> float:
        """Seconds before try ``attempts + 1`` of a failing page (jittered, capped)."""
        return backoff(attempts + 1, base=BACKOFF_BASE, cap=BACKOFF_MAX, rand=self._rng.random)

    def _health_of(self, name: str) -> FailureLog:
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = FailureLog(log, "channel failing",
                                                      "channel recovered", channel=name)
        return health

    def _failing(self, name: str, delivery_id: str, exc: BaseException,
                 retry_in: float | None) -> None:
        self._health_of(name).failed(exc, alert_id=delivery_id,
                                     retry_in=None if retry_in is None else round(retry_in, 1))

    def _recovered(self, name: str) -> None:
        self._health_of(name).succeeded()

    # ------------------------------------------------------------------ repeats
    def fire_repeats(self, now: float) -> int:
        """Queue every repeat that is due; stop schedules whose subject is settled."""
        queued = 0
        for alert, n in self.store.due_repeats(now):
            if self.settled(alert) or n >= self.repeat_max:
                self.store.set_repeat(alert.id, n, now, done=True)
                continue
            channels = [c for c in self.store.delivery_channels(alert.id)
                        if c not in BUILT_IN and c in self.channels]
            rep = n + 1
            with self.store.transaction():
                self.store.add_repeat(alert.id, rep, channels)
                self.store.set_repeat(alert.id, rep, now + self.repeat_every,
                                      done=rep >= self.repeat_max)
                for c in channels:
                    self.audit.delivery(now, repeat_id(alert.id, rep), c, rep, "repeat",
                                        "not acknowledged")
            queued += len(channels)
        if queued:
            self.notify()
        return queued

    async def run_repeats(self) -> None:
        """Repeat loop: wake at the next due repeat (or when one is armed); until cancelled."""
        while True:
            self._repeat_wake.clear()
            await self.locks.retry("repeats", lambda: self.fire_repeats(self.clock.now()))
            self._repeat_at = self.store.next_repeat()
            await clock_wait(self.clock, self._repeat_wake, self._repeat_at)
            self._repeat_at = None

    async def flush(self, timeout: float) -> None:
        """On shutdown: one more pass over every channel, bounded in time."""
        try:
            async with asyncio.timeout(timeout):
                for name in self.channels:
                    await self.drain(name)
        except TimeoutError:
            log.warning("outbox flush timed out; pending alerts go out after restart")
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            log.warning("outbox flush stopped: the store is locked; pending alerts go out "
                        "after restart", error=str(exc))


class _Flight:
    """One window of a batching channel handed to ``send_batch``, not yet recorded."""

    __slots__ = ("items", "task", "threads", "wires")

    def __init__(self, items: list[PendingDelivery], wires: list[Alert],
                 threads: list[Thread | None],
                 task: asyncio.Future[list[str | BaseException | None]]) -> None:
        self.items = items
        self.wires = wires
        self.threads = threads
        self.task = task

    def keys(self) -> list[tuple[str, int]]:
        """``(alert id, rep)`` of its deliveries (``Outbox._flying``)."""
        return [(i.alert.id, i.rep) for i in self.items]
