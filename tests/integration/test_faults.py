"""Faults around a running daemon: it keeps running, says what is wrong, and catches up.

Each test runs the real ``Daemon`` in-process (store, pipeline, outbox, timer, HTTP) and
breaks one thing around it for real: a webhook receiver that answers 503 and then refuses
connections for 10 simulated minutes; a full disk under the recording folder (tmpfs); a
second process holding the SQLite store's write lock; the daemon's clock jumping; the MQTT
broker going away for a minute and coming back on its port. For each, the test checks
the log lines (once, not per post or per try) and the ``/metrics`` samples that show the
fault, then that everything is delivered or stored exactly once afterwards.

Simulated time: the outbox and the MQTT source's reconnect backoff run on clocks the test
moves from one retry to the next, so 10 minutes of outage take milliseconds. The SQLite
lock is held in real time (2 s) by another process: that wait is real by nature.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alerts.channels.options import MqttChannelConfig, WebhookChannelConfig
from alerts.outbox import Outbox
from monitor.clock import ScaledClock, SimClock
from monitor.config import AlertsConfig, Config, HttpConfig, MqttSourceConfig
from monitor.daemon import Daemon
from monitor.feed import FeedStats, read_feeds
from monitor.sources.base import Batch, Source
from monitor.sources.mqtt import MqttSource
from monitor.sources.recorder import Recorder
from rules.policy import BrandConfig, CrisisConfig, SlaConfig
from rules.records import Alert, Author, Duration, Post, PostKind
from tests.fakes.providers import WEBHOOK_SECRET, running_providers
from tests.fixtures.broker import free_port, start_broker
from tests.fixtures.clocks import JumpClock, StepClock
from tests.fixtures.live import (
    TOKEN,
    LogLines,
    captured_logs,
    metric,
    parse_metrics,
    running_daemon,
    until,
)

BRAND = "快书包"
OFFICIAL = "1650000001"
T0 = 1_779_242_400.0  # 2026-05-20 10:00 +08:00: no quiet hours in play
QUIET_CRISIS = CrisisConfig(burst_min_negatives=1000, danger_min_posts=1000)
"""No crisis: its grouping would fold mention pages into summaries."""
URL_SECRET = "url-secret-7f3a9c"


def post(pid: str, at: float, text: str = f"{BRAND}送错了，太差劲") -> Post:
    return Post(id=pid, kind=PostKind.STATUS, created_at=at, text=text,
                author=Author(id=f"u{pid}", screen_name=f"顾客{pid}"))


def raw_post(pid: int, text: str = f"{BRAND}送货太慢了", **extra: Any) -> dict[str, Any]:
    """A post as a Weibo-style JSON object (what MQTT publishers send)."""
    return {"id": 6_100_000_000_000_000 + pid, "created_at": "2026-05-20T10:00:00+08:00",
            "text": text, "user": {"id": 4200 + pid, "screen_name": f"u{pid}"}, **extra}


def base_config(tmp: Path, **kw: Any) -> Config:
    return Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,),
                                      official_accounts=(OFFICIAL,)),),
                  crisis=QUIET_CRISIS,
                  http=HttpConfig(listen=f"127.0.0.1:{free_port()}", token="env:FAULT_TOKEN"),
                  alerts=AlertsConfig(terminal=False, log=str(tmp / "alerts.jsonl")), **kw)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_TOKEN", TOKEN)
    monkeypatch.setenv("FAULT_HOOK_SECRET", WEBHOOK_SECRET)


@pytest.fixture
def logs() -> Iterator[LogLines]:
    with captured_logs() as lines:
        yield lines


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in (TOKEN, WEBHOOK_SECRET, URL_SECRET):
            assert secret not in text, f"secret {secret[:6]}... leaked"


# --------------------------------------------------------------------------- webhook
class FlakyReceiver:
    """A webhook receiver that can answer 503, stop listening, and come back on its port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "up"
        self.keys: list[str] = []
        """Idempotency keys of the requests it accepted (202)."""
        self.unavailable = 0
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        if self.mode == "503":
            self.unavailable += 1
            return web.Response(status=503, text="down for maintenance")
        self.keys.append(request.headers["Idempotency-Key"])
        return web.json_response({"accepted": True}, status=202)

    async def listen(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        """Stop listening and drop open connections: the next connect is refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def worker_idle(outbox: Outbox, name: str, now: float) -> bool:
    """Nothing of ``name`` is due at ``now``: its worker has finished its pass."""
    nxt = outbox.next_try(name)
    return nxt is None or nxt > now


async def test_webhook_down_ten_minutes_then_every_alert_once_and_others_unblocked(
        tmp_path: Path, logs: LogLines, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    receiver = FlakyReceiver(port)
    monkeypatch.setenv("FAULT_HOOK_URL", f"http://127.0.0.1:{port}/hook?key={URL_SECRET}")
    async with running_providers() as providers:
        config = base_config(tmp_path, channels=(
            WebhookChannelConfig(type="webhook", name="down", url="env:FAULT_HOOK_URL",
                                 secret="env:FAULT_HOOK_SECRET", timeout=Duration(2.0)),
            WebhookChannelConfig(type="webhook", name="ok", url=providers.webhook_url,
                                 secret="env:FAULT_HOOK_SECRET", timeout=Duration(2.0))))
        clock = SimClock(T0, autojump=False)  # the outbox's: 10 minutes of backoff, walked in steps
        await receiver.listen()
        receiver.mode = "503"
        async with running_daemon(config, tmp_path / "s.db", ScaledClock(T0, 1.0),
                                  delivery_clock=clock) as live:
            outbox = live.daemon.outbox
            await live.daemon.ingest(Batch("test", [post(f"{i}", T0) for i in range(5)]))
            # The other channels are not held up by the dead one.
            await until(lambda: len(providers.webhook.received) == 5, what="the ok channel")
            start = clock.now()
            timeline = [(start + 300, "refuse"), (start + 420, "more posts"),
                        (start + 600, "up")]
            mid = ""
            while True:
                await until(lambda: worker_idle(outbox, "down", clock.now()),
                            what="the down channel's worker to finish its pass")
                nxt = outbox.next_try("down")
                if nxt is None:
                    break
                if timeline and timeline[0][0] <= nxt:
                    at, what = timeline.pop(0)
                    clock.advance_to(at)
                    if what == "refuse":
                        await receiver.close()
                        receiver.mode = "refuse"
                    elif what == "more posts":  # alerts keep coming during the outage
                        await live.daemon.ingest(Batch("test", [post(f"{i}", T0)
                                                                for i in range(5, 8)]))
                        await until(lambda: len(providers.webhook.received) == 8)
                        # Received is not yet recorded: the outbox has the reply only next.
                        await until(lambda: live.daemon.store.delivery_counts().get(
                            ("ok", "delivered")) == 8, what="the ok channel's records")
                        mid = await live.metrics()
                    else:
                        receiver.mode = "up"
                        await receiver.listen()
                    continue
                clock.advance_to(nxt)
                outbox.notify()
            recovered_at = start + 600
            caught_up_in = clock.now() - recovered_at
            end = await live.metrics()
            assert live.alive
            stored = [a.id for a in live.daemon.store.alerts()]
        await receiver.close()
    failures = outbox.failures["down"]
    # During the outage: failing, 8 pages waiting, every failed try counted.
    assert metric(mid, "crisismon_channel_up", channel="down") == 0
    assert metric(mid, "crisismon_channel_up", channel="ok") == 1
    assert metric(mid, "crisismon_outbox", channel="down", state="pending") == 8
    assert metric(mid, "crisismon_outbox", channel="ok", state="delivered") == 8
    assert metric(mid, "crisismon_delivery_failures_total", channel="down") >= 5
    assert metric(end, "crisismon_delivery_failures_total", channel="down") == failures
    assert receiver.unavailable >= 3 and failures > receiver.unavailable  # 503s, then refusals
    # After: each alert exactly once per idempotency key, in order, nothing pending.
    assert receiver.keys == stored and len(stored) == 8
    assert Counter(providers.webhook.received[i].headers["Idempotency-Key"]
                   for i in range(8)) == Counter(stored)
    assert metric(end, "crisismon_deliveries_total", channel="down", type="mention.new") == 8
    assert metric(end, "crisismon_channel_up", channel="down") == 1
    assert metric(end, "crisismon_outbox", channel="down", state="delivered") == 8
    assert ("crisismon_outbox", frozenset({("channel", "down"), ("state", "pending")})) \
        not in parse_metrics(end)
    # Logged once when it started failing, once when it recovered; never per try.
    assert len(logs.events("channel failing", channel="down")) == 1
    assert len(logs.events("channel recovered", channel="down")) == 1
    assert logs.events("channel failing", channel="ok") == []
    assert_no_secrets(logs.text, mid, end)
    assert 0 <= caught_up_in <= 60  # at most one (capped) backoff after it came back
    print(f"webhook outage: {failures} failed tries ({receiver.unavailable} x 503), "
          f"caught up {caught_up_in:.0f} simulated s after the receiver returned")


# --------------------------------------------------------------------------- disk full
class SmallDisk:
    """A 64 KiB file system for the recording folder, and a way to fill it.

    ``kind`` says how: ``tmpfs`` (a real mount, so writes fail with ENOSPC from the
    kernel) when mounting is allowed (root); otherwise ``injected``: the files the
    recorder opens there raise ``OSError(ENOSPC)`` on write while "full". The tmpfs is
    used whenever it can be; the fallback warns, so it is never silent.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kind = ""
        self.full = False
        self._filler = root / "filler"

    def fill(self) -> None:
        """Take every free byte (a big file, as another program's logs would)."""
        self.full = True
        if self.kind != "tmpfs":
            return
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (b"\0" * 4096, b"\0"):
                with pytest.raises(OSError) as err:
                    while True:
                        os.write(fd, chunk)
                assert err.value.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        """An operator deletes the big file: space is back."""
        self.full = False
        self._filler.unlink(missing_ok=True)


class _FullableFile:
    """A file whose writes fail with ENOSPC while its ``SmallDisk`` is full (fallback)."""

    def __init__(self, inner: Any, disk: SmallDisk) -> None:
        self._inner, self._disk = inner, disk

    def write(self, data: bytes) -> int:
        if self._disk.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return int(self._inner.write(data))

    def flush(self) -> None:
        if self._disk.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextmanager
def small_disk(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    root.mkdir()
    disk = SmallDisk(root)
    mounted = os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)],
        capture_output=True, check=False).returncode == 0
    if mounted:
        disk.kind = "tmpfs"
    else:
        disk.kind = "injected"
        warnings.warn("disk-full test: cannot mount a tmpfs here (not root?); injecting "
                      "OSError(ENOSPC) into the recorder's file writes instead", stacklevel=2)
        real_open = Path.open

        def opener(self: Path, mode: str = "r", *args: Any, **kw: Any) -> Any:
            f = real_open(self, mode, *args, **kw)
            writing = self.is_relative_to(root) and any(c in mode for c in "wxa")
            return _FullableFile(f, disk) if writing else f

        monkeypatch.setattr(Path, "open", opener)
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=False)


async def publish(broker: tuple[str, int], topic: str, payloads: list[bytes]) -> None:
    import aiomqtt

    async with aiomqtt.Client(broker[0], broker[1], identifier=f"pub-{uuid.uuid4().hex}",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


def messages(ids: range, pad: int = 0) -> list[bytes]:
    """Two posts per MQTT message; ``pad`` bytes of incompressible filler each."""
    import json

    objs = [raw_post(i, pad=os.urandom(pad // 2).hex()) if pad else raw_post(i) for i in ids]
    return [json.dumps(objs[i:i + 2]).encode() for i in range(0, len(objs), 2)]


async def test_disk_full_under_the_recording_keeps_ingest_and_alerts_going(
        tmp_path: Path, logs: LogLines, mqtt_broker: tuple[str, int], mqtt_protocol: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if mqtt_protocol != "5":
        pytest.fail("needs an MQTT 5 broker (mosquitto)")
    topic = f"crisismon-test/{uuid.uuid4().hex}/posts"
    rec_clock = SimClock(T0)
    with small_disk(tmp_path / "disk", monkeypatch) as disk:
        recorder = Recorder(disk.root / "rec", rec_clock, retry_every=10.0)
        source = MqttSource("mqtt:posts", MqttSourceConfig(
            type="mqtt", topics=(topic,), host=mqtt_broker[0], port=mqtt_broker[1],
            client_id=f"crisismon-{uuid.uuid4().hex}"), SimClock(T0), recorder=recorder)
        async with running_providers() as providers:
            config = base_config(tmp_path, channels=(WebhookChannelConfig(
                type="webhook", name="ok", url=providers.webhook_url,
                secret="env:FAULT_HOOK_SECRET"),))
            async with running_daemon(config, tmp_path / "s.db", ScaledClock(T0, 1.0),
                                      sources=lambda _d: [source], recorder=recorder) as live:
                store = live.daemon.store
                await until(source.subscribed.is_set, what="the MQTT subscription")
                await publish(mqtt_broker, topic, messages(range(1, 3)))
                await until(lambda: store.count_events() == 2)
                assert recorder.lines == 2
                disk.fill()
                await publish(mqtt_broker, topic, messages(range(3, 13), pad=8000))
                await until(lambda: store.count_events() == 12, what="posts while full")
                await until(lambda: len(providers.webhook.received) == 12, what="alerts")
                rec_clock.advance(10)  # a retry falls due: the disk is still full
                await publish(mqtt_broker, topic, messages(range(13, 15), pad=8000))
                await until(lambda: store.count_events() == 14)
                full = await live.metrics()
                files_while_full = sorted(p.name for p in (disk.root / "rec").iterdir())
                disk.free()
                rec_clock.advance(10)
                await publish(mqtt_broker, topic, messages(range(15, 17)))
                await until(lambda: store.count_events() == 16)
                await until(lambda: len(providers.webhook.received) == 16)
                after = await live.metrics()
                assert live.alive
            recorder.close()
            recorded = read_feeds(sorted((disk.root / "rec").iterdir()), FeedStats())
    # Full: ingest and alerting went on; one error line, a metric, no trail of files.
    assert metric(full, "crisismon_recording_ok") == 0
    assert metric(full, "crisismon_recording_dropped_total") == 12  # posts 3..14
    assert metric(full, "crisismon_recording_failed_writes_total") >= 2
    assert metric(full, "crisismon_posts_ingested_total", source="mqtt:posts") == 14
    assert len(files_while_full) == 1, files_while_full  # the empty retry file was removed
    failed = logs.events("recording failed; posts are still ingested, not recorded, until it "
                         "works again")
    assert len(failed) == 1 and "No space left on device" in failed[0]["error"]
    # Space back: recording resumes in a new file, said once.
    assert metric(after, "crisismon_recording_ok") == 1
    recovered = logs.events("recording recovered")
    assert len(recovered) == 1 and recovered[0]["dropped"] == 12
    assert len(logs.events("recording to")) == 2  # the first file and the one after
    ids = sorted(int(e.id) - 6_100_000_000_000_000 for e in recorded)
    assert ids == [1, 2, 15, 16]
    assert {r.body["post_id"] for r in providers.webhook.received} == {
        str(6_100_000_000_000_000 + i) for i in range(1, 17)}
    print(f"disk full ({disk.kind}): 16 posts ingested and paged, 12 not recorded "
          f"(counted), recording resumed")


# --------------------------------------------------------------------------- SQLite lock
LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


LOCK_HELD = 2.0
"""Real seconds the other process holds the lock: 20 times the daemon's busy_timeout."""


class Locker:
    """Another process holding ``BEGIN EXCLUSIVE`` on the store until ``release``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None

    async def lock(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(self.path), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        async with asyncio.timeout(20):
            assert await self.proc.stdout.readline() == b"locked\n"

    async def release(self) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(20):
            assert await self.proc.wait() == 0
        self.proc = None


@asynccontextmanager
async def store_locked(path: Path) -> AsyncIterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the store for the block."""
    locker = Locker(path)
    await locker.lock()
    try:
        yield
    finally:
        await locker.release()


class GateChannel:
    """A channel whose sends wait at a gate the test opens (to time a send's record)."""

    name = "gate"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send(self, alert: Alert) -> None:
        self.waiting.set()
        await self.gate.wait()
        self.sent.append(alert.id)


async def test_store_locked_by_another_process_loses_and_duplicates_nothing(
        tmp_path: Path, logs: LogLines, mqtt_broker: tuple[str, int],
        mqtt_protocol: str) -> None:
    if mqtt_protocol != "5":
        pytest.fail("needs an MQTT 5 broker (mosquitto)")
    topic = f"crisismon-test/{uuid.uuid4().hex}/posts"
    client_id = f"crisismon-{uuid.uuid4().hex}"
    db = tmp_path / "s.db"
    config = base_config(tmp_path)
    clock = JumpClock(T0 + 10)
    gate = GateChannel()
    sources: list[MqttSource] = []

    def source(_d: Daemon) -> list[Source]:
        sources.append(MqttSource("mqtt:posts", MqttSourceConfig(
            type="mqtt", topics=(topic,), host=mqtt_broker[0], port=mqtt_broker[1],
            client_id=client_id), SimClock(T0)))
        return [sources[-1]]

    async with running_daemon(config, db, clock, sources=source, channels=[gate]) as live:
        daemon, store = live.daemon, live.daemon.store
        await until(sources[0].subscribed.is_set, what="the MQTT subscription")
        await publish(mqtt_broker, topic, messages(range(1, 2)))
        await until(gate.waiting.is_set, what="the first page's send")
        lag = 0.0
        async with store_locked(db):
            t_locked = time.monotonic()
            gate.gate.set()  # the send succeeds while the store is locked: its record waits
            await publish(mqtt_broker, topic, messages(range(2, 7)))
            clock.jump(200)  # p1's 3-minute warning falls due while the store is locked
            await until(lambda: {"ingest", "deadlines", "outbox:gate"} <= set(
                daemon.locks.retries), what="every writer to meet the lock")
            while time.monotonic() - t_locked < LOCK_HELD:
                lag = max(lag, daemon.metrics.last_loop_lag)
                await asyncio.sleep(0.05)
            during = await live.metrics()
            stored_during = store.count_events()
            assert live.alive
        held = time.monotonic() - t_locked
        await until(lambda: store.count_events() == 6, what="the posts after the lock")
        await until(lambda: len(gate.sent) == 12, what="6 mention pages and 6 warnings")
        # The outbox marks its channel unlocked when its pass returns, a moment after
        # the last send: read the gauge once every writer got through.
        await until(lambda: not daemon.locks.waiting, what="every writer through")
        after = await live.metrics()
        # Once more, and stop the daemon while its batch waits: nothing was acknowledged.
        locker = Locker(db)
        await locker.lock()
        try:
            before = daemon.locks.retries["ingest"]
            await publish(mqtt_broker, topic, messages(range(7, 8)))
            await until(lambda: daemon.locks.retries["ingest"] > before, what="post 7 to wait")
            stop_with = store.count_events()
        except BaseException:
            await locker.release()
            raise
    await locker.release()  # only now, with the daemon stopped
    async with running_daemon(replace(config, http=replace(
            config.http, listen=f"127.0.0.1:{free_port()}")), db, clock, sources=source,
            channels=[gate]) as live:
        await until(lambda: live.daemon.store.count_events() == 7, what="post 7 redelivered")
        await until(lambda: len(gate.sent) == 14)
        alerts = live.daemon.store.alerts()
    # While locked: still running, nothing half-stored, and /metrics says why.
    assert stored_during == 1 and stop_with == 6
    assert metric(during, "crisismon_store_locked") == 1
    assert metric(during, "crisismon_ready") == 0
    for op in ("ingest", "deadlines", "outbox:gate"):
        assert metric(during, "crisismon_store_locked_retries_total", op=op) >= 1
    assert metric(after, "crisismon_store_locked") == 0
    assert metric(after, "crisismon_ready") == 1
    assert len(logs.events("store locked by another process; waiting to write")) == 2
    assert len(logs.events("store writable again")) == 1  # the 2nd episode ended in a stop
    # After: every post stored once, every alert raised and sent once.
    kinds = Counter((a.type, a.post_id) for a in alerts)
    assert sorted(kinds.values()) == [1] * 14
    assert sorted(str(t) for t, _ in kinds) == ["mention.new"] * 7 + ["reply.warning"] * 7
    assert Counter(gate.sent) == Counter(a.id for a in alerts)
    assert lag < 1.0, lag  # SQLite's own wait is short: the loop kept turning
    print(f"store locked {held:.1f}s: {dict(daemon.locks.retries)} locked tries, "
          f"max event-loop lag {lag * 1000:.0f} ms; 7 posts and 14 alerts, each once")


# --------------------------------------------------------------------------- clock jump
class RecordingChannel:
    """A channel that keeps what it was sent, in order."""

    name = "rec"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.sent.append(alert)


JUMPED = "clock jumped; deadlines it skipped fired at once, each once, in order"


async def test_clock_jumps_fire_each_skipped_deadline_once_in_order(
        tmp_path: Path, logs: LogLines) -> None:
    config = replace(base_config(tmp_path), sla=SlaConfig(
        warn_at=Duration(180), reply_within=Duration(300), escalate_after=Duration(3 * 3600)))
    clock = JumpClock(T0 + 1)
    rec = RecordingChannel()
    posts = [post("m1", T0 - 60), post("m2", T0 - 30), post("m3", T0)]
    due = sorted((p.created_at + d, kind, p.id) for p in posts
                 for d, kind in ((180, "reply.warning"), (300, "reply.breach"),
                                 (3 * 3600, "reply.escalated")))

    def fired() -> list[tuple[float, str, str | None]]:
        return [(a.at, str(a.type), a.post_id) for a in rec.sent if a.type != "mention.new"]

    async with running_daemon(config, tmp_path / "s.db", clock, channels=[rec]) as live:
        engine = live.daemon.pipeline.engine
        await live.daemon.ingest(Batch("test", posts))
        await until(lambda: len(rec.sent) == 3, what="the mention pages")
        assert engine.pending() == 3
        clock.jump(2 * 3600)  # NTP steps the wall clock two hours forward
        await until(lambda: len(fired()) == 6, what="the skipped deadlines")
        forward = await live.metrics()
        assert fired() == due[:6]  # in time order, each once; escalations still pending
        assert engine.pending() == 3 and engine.next_due() == due[6][0]
        clock.jump(-3600)  # and back an hour: nothing fires, nothing is lost
        await until(lambda: len(logs.events(JUMPED, direction="backward")) == 1,
                    what="the backward jump to be noticed")
        assert fired() == due[:6] and engine.pending() == 3
        clock.jump(3 * 3600)  # past the escalations
        await until(lambda: len(fired()) == 9, what="the escalations")
        end = await live.metrics()
        assert live.alive
    # A restart on the same store fires nothing again.
    async with running_daemon(replace(config, http=replace(
            config.http, listen=f"127.0.0.1:{free_port()}")), tmp_path / "s.db", clock,
            channels=[rec]) as again:
        assert again.daemon.pipeline.engine.pending() == 0  # rebuilt: nothing left to fire
        assert again.daemon.store.delivery_counts() == {("rec", "delivered"): 12}
    assert fired() == due and len(rec.sent) == 12
    assert len({a.id for a in rec.sent}) == 12
    assert metric(forward, "crisismon_clock_jumps_total", direction="forward") == 1
    assert abs(metric(forward, "crisismon_clock_last_jump_seconds") - 7200) < 1
    assert metric(end, "crisismon_clock_jumps_total", direction="forward") == 2
    assert metric(end, "crisismon_clock_jumps_total", direction="backward") == 1
    jumps = logs.events(JUMPED)
    assert [(round(j["jump_s"] / 60), j["direction"], j["alerts_fired"]) for j in jumps] == [
        (120, "forward", 6), (-60, "backward", 0), (180, "forward", 3)]


# --------------------------------------------------------------------------- MQTT broker
OUTAGE = 60.0
"""Simulated seconds the broker stays down (the source's backoff clock walks them)."""


class AlertWatcher:
    """A subscriber to the alert topics; reconnects only when told (the broker restarts)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ids: list[str] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        import json

        import aiomqtt

        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", self.port,
                                      identifier=f"watch-{uuid.uuid4().hex}") as client:
                await client.subscribe("crisismon/alerts/#", qos=1)
                self.ready.set()
                async for message in client.messages:
                    self.ids.append(json.loads(bytes(message.payload))["id"])  # type: ignore[arg-type]

    async def start(self) -> None:
        self.ready.clear()
        self.task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self.ready.wait()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def test_mqtt_broker_down_a_minute_then_everything_caught_up(
        tmp_path: Path, logs: LogLines) -> None:
    port = free_port()
    persist = tmp_path / "broker"  # the broker keeps sessions across its restart
    topic = f"crisismon-test/{uuid.uuid4().hex}/posts"
    backoff = StepClock(T0)  # the source's reconnect waits: the test walks them
    delivery = SimClock(T0, autojump=False)  # the outbox's retry waits
    config = base_config(tmp_path, channels=(MqttChannelConfig(
        type="mqtt", name="mq", port=port, timeout=Duration(0.3),
        reconnect_min=Duration(0.05), reconnect_max=Duration(0.2)),))
    # The channel's own reconnect waits are real seconds: shortened by config (0.05-0.2 s)
    # because here the outage's length is the source's business, not the channel's.
    source = MqttSource("mqtt:posts", MqttSourceConfig(
        type="mqtt", topics=(topic,), port=port, client_id=f"crisismon-{uuid.uuid4().hex}"),
        backoff)
    watcher = AlertWatcher(port)
    broker = start_broker(port, kind="mosquitto", persist=persist)
    broker.__enter__()
    try:
        async with running_daemon(config, tmp_path / "s.db", ScaledClock(T0, 1.0),
                                  delivery_clock=delivery, sources=lambda _d: [source]) as live:
            daemon, store = live.daemon, live.daemon.store
            channel = daemon.outbox.channels["mq"].inner  # type: ignore[attr-defined]
            await until(source.subscribed.is_set, what="the source to subscribe")
            await watcher.start()
            await publish(("127.0.0.1", port), topic, messages(range(1, 2)))
            await until(lambda: len(watcher.ids) == 1, what="the first alert over MQTT")
            await watcher.stop()

            broker.__exit__(None, None, None)  # the broker goes away
            await until(lambda: not source.subscribed.is_set() and not channel.connected)
            # An alert raised meanwhile (from another source): the MQTT channel fails, the
            # outbox keeps it.
            await daemon.ingest(Batch("api", [post("api-1", T0)]))
            await until(lambda: daemon.outbox.failures["mq"] >= 1, what="a failed send")
            t_down, seen = backoff.now(), 0
            while True:  # a minute of the source's backoff, one reconnect attempt at a time
                nxt = await backoff.next_sleep(after=seen)
                seen = backoff.sleeps
                if nxt > t_down + OUTAGE:
                    break
                backoff.advance_to(nxt)
            attempts = source.failures
            down = await live.metrics()
            assert live.alive

            broker = start_broker(port, kind="mosquitto", persist=persist)  # same port
            broker.__enter__()
            # Posts published after the broker is back but before the source returns wait
            # in its persistent session (QoS 1).
            await publish(("127.0.0.1", port), topic, messages(range(2, 6)))
            backoff.advance_to(nxt)  # the source's next attempt: it reconnects
            await until(lambda: store.count_events() == 6, what="the queued posts")
            await until(lambda: channel.connected, what="the channel to reconnect")
            await watcher.start()
            delivery.advance_to(daemon.outbox.next_try("mq") or delivery.now())
            daemon.outbox.notify()
            await until(lambda: len(watcher.ids) >= 6, what="the alerts that waited")
            # The watcher can hold a page before its PUBACK is back at the channel: the
            # outbox records the window, and the channel as up, only then.
            await until(lambda: store.delivery_counts().get(("mq", "delivered")) == 6
                        and "mq" not in daemon.outbox.failing(),
                        what="the outbox to record the pages that went out")
            up = await live.metrics()
            stored = [a.id for a in store.alerts()]
            await watcher.stop()
    finally:
        broker.__exit__(None, None, None)
    # While down: still running, and both logs and /metrics say what is wrong.
    assert 5 <= attempts <= 12, attempts  # backoff, not hammering: ~1, 2, 4, 8, 15, 15.. s
    assert nxt - t_down <= OUTAGE + 15  # back within one capped wait (backoff_max 15 s)
    assert metric(down, "crisismon_source_up", source="mqtt:posts") == 0
    assert metric(down, "crisismon_source_failures_total", source="mqtt:posts") == attempts
    assert metric(down, "crisismon_channel_connected", channel="mq") == 0
    assert metric(down, "crisismon_channel_up", channel="mq") == 0
    assert metric(down, "crisismon_delivery_failures_total", channel="mq") >= 1
    assert metric(down, "crisismon_outbox", channel="mq", state="pending") == 1
    assert metric(down, "crisismon_ready") == 0
    assert len(logs.events("source failing", source="mqtt:posts")) == 1
    assert len(logs.events("mqtt.connection_lost", channel="mq")) == 1
    assert len(logs.events("channel failing", channel="mq")) == 1
    # After: every post once, every alert once over MQTT, nothing pending.
    assert [r["failed_attempts"] for r in logs.events("source recovered")] == [attempts]
    assert len(logs.events("channel recovered", channel="mq")) == 1
    assert metric(up, "crisismon_source_up", source="mqtt:posts") == 1
    assert metric(up, "crisismon_channel_up", channel="mq") == 1
    assert metric(up, "crisismon_ready") == 1
    assert metric(up, "crisismon_outbox", channel="mq", state="delivered") == 6
    assert sorted(Counter(watcher.ids).values()) == [1] * 6 and set(watcher.ids) == set(stored)
    print(f"broker down {nxt - t_down:.0f} simulated s: {attempts} reconnect attempts, "
          f"6 posts and 6 alerts each once after")


async def test_bad_input_is_rejected_counted_in_metrics_and_the_source_goes_on(
        tmp_path: Path, logs: LogLines, mqtt_broker: tuple[str, int]) -> None:
    topic = f"crisismon-test/{uuid.uuid4().hex}/posts"
    source = MqttSource("mqtt:posts", MqttSourceConfig(
        type="mqtt", topics=(topic,), host=mqtt_broker[0], port=mqtt_broker[1],
        client_id=f"crisismon-{uuid.uuid4().hex}", max_payload=4096), SimClock(T0))
    async with running_providers() as providers:
        config = base_config(tmp_path, channels=(WebhookChannelConfig(
            type="webhook", name="ok", url=providers.webhook_url,
            secret="env:FAULT_HOOK_SECRET"),))
        async with running_daemon(config, tmp_path / "s.db", ScaledClock(T0, 1.0),
                                  sources=lambda _d: [source]) as live:
            await until(source.subscribed.is_set, what="the MQTT subscription")
            await publish(mqtt_broker, topic, [
                b"{not json", b'{"id": 7, "text": "\xff\xfe"}', b'{"text": "no id"}',
                b"[" + b" " * 5000 + b"]", *messages(range(1, 3))])
            await until(lambda: live.daemon.store.count_events() == 2, what="the good posts")
            await until(lambda: len(providers.webhook.received) == 2, what="the good posts' pages")
            body = await live.metrics()
            assert live.alive
    got = {reason: metric(body, "crisismon_posts_rejected_total", source="mqtt:posts",
                          reason=reason)
           for reason in ("not_json", "not_utf8", "not_a_post", "too_large")}
    assert got == {"not_json": 1.0, "not_utf8": 1.0, "not_a_post": 1.0, "too_large": 1.0}
