"""Outbox throughput: the batch channels (alert log, MQTT) and a signed JSON webhook.

    python bench/outbox.py [--batch 50000] [--burst 3000] [--rate 100] [--seconds 20]
                           [--incident] [--broker HOST:PORT]

0. Batch channels: ``--batch`` alerts (``mention.new``, as a firehose raises them) are
   stored at once with a pending delivery on the alert log (``alerts.jsonl``, fsync) and
   on MQTT (QoS 1 to a real mosquitto: its own unless ``--broker``), as the daemon
   routes them. Each channel's worker alone, then both together as in the daemon: alerts/s
   from the first pass to the last delivery recorded in the store (after the fsync / the
   broker's PUBACK), and the CPU this process spent per delivery (all its threads: the
   figure that does not depend on how busy the machine is). A ``mosquitto_sub`` and the
   log file check that each alert arrived exactly once.
1. Burst: ``--burst`` alerts are stored at once (one transaction, one pending delivery
   each, as the pipeline does); one outbox worker sends them to a webhook receiver that
   verifies the HMAC signature. Prints alerts/s from the first send to the last receipt.
2. Paced: ``--rate`` alerts/s for ``--seconds``, each committed to the store the moment it
   falls due (what the daemon's timer does) and the worker woken; the receiver stamps
   each arrival. Prints p50/p99/max of "fell due -> webhook received" (target p99 < 200 ms
   at 100 alerts/s).

With ``--incident`` every alert belongs to one incident, so each delivery is also an update
of the incident's thread (looked up and advanced in the store with the delivery).

Real parts only: the SQLite store in WAL mode on disk, the production WebhookChannel
(aiohttp client, HMAC-SHA256 signature, Idempotency-Key) and the production Outbox with
its audit log; the receiver is an aiohttp server in its own thread and event loop, so
receipt times are not held up by the sender's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.alertlog import AlertLogChannel
from alerts.channels.mqtt import MqttChannel
from alerts.channels.webhook import WebhookChannel
from alerts.outbox import WINDOWS_IN_FLIGHT, Outbox
from bench.ingest import own_mosquitto
from monitor.clock import WallClock
from monitor.mqttread import install_patches
from monitor.secrets import Secret
from monitor.store import Store
from rules.records import DEFAULT_TZ, Alert, AlertType

SECRET = "bench-secret"


class Receiver:
    """A webhook receiver in its own thread: verifies the signature, stamps arrivals."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.bad = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        now = time.time()
        good = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Crisismon-Signature", ""), good):
            self.bad += 1
            return web.Response(status=401)
        key = request.headers["Idempotency-Key"]
        if key in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[key] = now
        return web.Response(status=202)

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)


INCIDENT: str | None = None  # --incident: every alert is an update of this incident


def make_alert(i: int, at: float, tag: str) -> Alert:
    return Alert(id=f"a-{tag}{i:08x}", type=AlertType.REPLY_BREACH, at=at, brand="快书包",
                 level=1, severity="P2", title=f"@顾客{i} 的投诉已超过5分钟未回复",
                 text="帖子内容：快书包送错了，太差劲了" * 3, post_id=str(i),
                 incident_id=INCIDENT, recipients=("客服总监",))


def mention_alert(i: int, at: float) -> Alert:
    return Alert(id=f"a-m{i:08x}", type=AlertType.MENTION_NEW, at=at, brand="快书包",
                 level=0, severity="P3", title=f"@顾客{i} 提到了快书包",
                 text="帖子内容：快书包今天的配送还挺快的，点赞" * 2, post_id=str(i),
                 recipients=("值班客服",))


BATCH_PREFIX = "crisismon-bench/outbox"


async def _until_sent(outbox: Outbox, names: list[str], n: int, timeout: float = 600) -> None:
    async with asyncio.timeout(timeout):
        while any(outbox.sent[name] < n for name in names):  # noqa: ASYNC110
            await asyncio.sleep(0.002)


async def batch_channels(n: int, host: str, port: int, tmp: Path,
                         windows: int = WINDOWS_IN_FLIGHT) -> list[str]:
    """Alerts/s of the batch channels, each alone and both together (see the docstring)."""
    lines = []
    cases = [["log"], ["mqtt"], ["log", "mqtt"]]
    for k, names in enumerate(cases):
        folder = tmp / f"batch{k}"
        store = Store(folder / "bench.db")
        log_file = folder / "alerts.jsonl"
        log_ch = AlertLogChannel(log_file, DEFAULT_TZ)
        mqtt = MqttChannel("mqtt", host=host, port=port, prefix=f"{BATCH_PREFIX}/{k}")
        await mqtt.start()
        async with asyncio.timeout(10):
            await mqtt.wait_connected()
        sub = None
        if "mqtt" in names and shutil.which("mosquitto_sub"):
            sub = subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
                ["mosquitto_sub", "-h", host, "-p", str(port), "-q", "1", "-V", "5",
                 "-t", f"{BATCH_PREFIX}/{k}/#", "-C", str(n), "-W", "600"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            await asyncio.sleep(0.5)  # subscribed before the first publish
        now = time.time()
        with store.transaction():
            store.add_alerts([mention_alert(i, now) for i in range(n)], names)
        outbox = Outbox(store, {"log": log_ch, "mqtt": mqtt}, WallClock(), windows=windows)
        start, cpu0 = time.perf_counter(), time.process_time()
        workers = [asyncio.create_task(outbox.run(name)) for name in names]
        outbox.notify()
        await _until_sent(outbox, names, n)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        for w in workers:
            w.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*workers)
        checks = []
        if "log" in names:
            ids = [line.split('"id":"', 1)[1].split('"', 1)[0]
                   for line in log_file.read_text(encoding="utf-8").splitlines()]
            checks.append(f"log {len(set(ids)):,} lines, {len(ids) - len(set(ids))} twice")
        if sub is not None:
            out, _ = await asyncio.to_thread(sub.communicate)
            ids = [line.split('"id":"', 1)[1].split('"', 1)[0] for line in out.splitlines()]
            checks.append(f"mqtt {len(set(ids)):,} received, {len(ids) - len(set(ids))} twice")
        load = [f"{x:.2f}" for x in os.getloadavg()]
        what = " + ".join(names)
        lines.append(f"batch channels, {n:,} mention.new alerts stored at once, {what}"
                     f"{' together' if len(names) > 1 else ' alone'}: {n / elapsed:,.0f} "
                     f"alerts/s per channel ({elapsed:.2f} s; CPU {cpu:.2f} s, "
                     f"{cpu / (n * len(names)) * 1e6:.0f} us a delivery; "
                     f"{'; '.join(checks)}; {windows} window(s) in flight; load {' '.join(load)})")
        print(lines[-1], flush=True)
        await mqtt.aclose()
        log_ch.close()
        store.close()
    return lines


async def burst(store: Store, outbox: Outbox, rx: Receiver, n: int) -> float:
    now = time.time()
    with store.transaction():
        store.add_alerts([make_alert(i, now, "b") for i in range(n)], ["hook"])
    start = time.perf_counter()
    worker = asyncio.create_task(outbox.run("hook"), name="outbox:hook")
    outbox.notify()
    # list(): a copy taken in one step; iterating the receiver thread's dict while it
    # grows raises "dictionary changed size during iteration".
    while sum(k.startswith("a-b") for k in list(rx.arrivals)) < n:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    worker.cancel()
    return n / elapsed


async def paced(store: Store, outbox: Outbox, rx: Receiver, rate: float,
                seconds: float) -> list[float]:
    worker = asyncio.create_task(outbox.run("hook"), name="outbox:hook")
    due: dict[str, float] = {}
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        # Fall due on a fixed schedule; commit and wake the worker, like Daemon.fire_due.
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        alert = make_alert(i, time.time(), "p")
        with store.transaction():
            store.add_alerts([alert], ["hook"])
        due[alert.id] = alert.at
        outbox.notify()
    deadline = time.time() + 30
    while len([k for k in list(rx.arrivals) if k.startswith("a-p")]) < n and \
            time.time() < deadline:  # noqa: ASYNC110 - polls another thread's dict
        await asyncio.sleep(0.01)
    worker.cancel()
    return [(rx.arrivals[k] - t) * 1000 for k, t in due.items() if k in rx.arrivals]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def main() -> int:
    install_patches()  # as the daemon does at start: paho's classes made cheaper
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=50_000,
                    help="alerts for the batch channels (0: skip)")
    ap.add_argument("--broker", default="", help="HOST:PORT (default: start mosquitto)")
    ap.add_argument("--burst", type=int, default=3000)
    ap.add_argument("--windows", type=int, default=WINDOWS_IN_FLIGHT,
                    help="windows in flight per batch channel (the daemon's: default)")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--incident", action="store_true",
                    help="every alert an update of one incident (threaded deliveries)")
    args = ap.parse_args()
    global INCIDENT
    INCIDENT = "inc-bench" if args.incident else None
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    if args.batch:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            if args.broker:
                host, _, port_text = args.broker.rpartition(":")
                port = int(port_text)
            else:
                host, port = stack.enter_context(own_mosquitto(Path(tmp)))
            await batch_channels(args.batch, host, port, Path(tmp), args.windows)
    rx = Receiver()
    rx.start()
    url = f"http://127.0.0.1:{rx.port}/hook"
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        hook = WebhookChannel("hook", Secret(url), secret=Secret(SECRET), timeout=10.0)
        outbox = Outbox(store, {"hook": hook}, WallClock())
        rate = await burst(store, outbox, rx, args.burst)
        what = " (threaded: one incident)" if args.incident else ""
        print(f"burst: {args.burst} alerts through the outbox to a signed webhook{what}: "
              f"{rate:,.0f} alerts/s")
        lat = await paced(store, outbox, rx, args.rate, args.seconds)
        n = int(args.rate * args.seconds)
        print(f"paced: {args.rate:g} alerts/s for {args.seconds:g}s: {len(lat)}/{n} received, "
              f"due->received p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
              f"max {max(lat):.1f} ms (target p99 < 200 ms)")
        audit = store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        print(f"duplicates at the receiver: {rx.duplicates}; bad signatures: {rx.bad}; "
              f"audit rows: {audit}")
        await hook.aclose()
        store.close()
    rx.stop()
    return 0 if rx.duplicates == 0 and rx.bad == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
