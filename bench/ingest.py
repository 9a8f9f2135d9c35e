"""Ingest throughput: posts/s through MQTT into the store, and through the HTTP poller.

    python bench/ingest.py [--posts 20000] [--broker HOST:PORT]

Without ``--broker`` it starts its own ``mosquitto`` configured as production should be
(``max_queued_messages 0``: the stock limit of 1000 queued messages per client drops
QoS 1 posts in a burst, and while the daemon is down).

MQTT: a real broker, QoS 1 both ways, one post per message (and a second run with
100-post arrays), the source's edge (decode, validate, normalise) and a SQLite store
in WAL mode, batch + PUBACK after commit as in production. Timed from the first
publish to the last post stored. HTTP: the bundled Weibo-style server on loopback,
one poller walking the whole backlog in pages of 200. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.clock import WallClock
from monitor.config import MqttSourceConfig
from monitor.sources.base import Batch
from monitor.sources.http import Limits, WeiboPoller
from monitor.sources.mqtt import MqttSource
from monitor.store import Store
from monitor.weibo_sim import WeiboSim, serve

T0 = 1_779_240_000.0
TEXTS = ["快书包送货太慢了，客服也不回", "快書包的新品太好喝了，推薦",
         "今天天气不错 快书包 &amp; 咖啡", "快书包杯盖又漏了[抓狂]", "转发微博"]


def make_post(n: int) -> dict[str, Any]:
    return {"id": 7_000_000_000_000_000 + n, "created_at": T0 + n * 0.01,
            "text": f"{random.choice(TEXTS)} #{n}",
            "user": {"id": 1_000_000 + n % 5000, "screen_name": f"用户{n % 5000}",
                     "followers_count": n % 1000, "verified": False},
            "reposts_count": n % 7, "comments_count": 0, "attitudes_count": 0}


class StoreSink:
    """What ``Daemon.ingest`` does to the store (events + cursor, one transaction)."""

    def __init__(self, store: Store, expect: int) -> None:
        self.store = store
        self.expect = expect
        self.count = 0
        self.done = asyncio.Event()

    async def ingest(self, batch: Batch) -> None:
        now = time.time()
        with self.store.transaction():
            for event in batch.events:
                self.store.add_event(event, now)
            if batch.cursor is not None:
                self.store.set_cursor(batch.source, batch.cursor)
        self.count += len(batch.events)
        if self.count >= self.expect:
            self.done.set()


async def publish_all(host: str, port: int, topic: str, payloads: list[bytes]) -> None:
    async with aiomqtt.Client(host, port, identifier=f"bench-pub-{uuid.uuid4().hex}",
                              protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=1000) as pub:
        window = asyncio.Semaphore(500)

        async def one(payload: bytes) -> None:
            async with window:
                await pub.publish(topic, payload, qos=1)

        async with asyncio.TaskGroup() as tg:
            for payload in payloads:
                tg.create_task(one(payload))


async def bench_mqtt(host: str, port: int, posts: int, per_message: int,
                     db: Path) -> tuple[float, float]:
    """(live posts/s with the publisher running, drain posts/s of a backlog queued while
    the daemon was down)."""
    payloads = [json.dumps([make_post(i + j) for j in range(per_message)]
                           if per_message > 1 else make_post(i), ensure_ascii=False).encode()
                for i in range(0, posts, per_message)]
    client_id = f"bench-{uuid.uuid4().hex}"
    store = Store(db)
    rates = []
    try:
        for live in (True, False):
            topic = f"crisismon-bench/{uuid.uuid4().hex}"
            cfg = MqttSourceConfig(type="mqtt", topics=(topic,), host=host, port=port,
                                   client_id=client_id, session_expiry=60)  # type: ignore[arg-type]
            sink = StoreSink(store, posts)
            source = MqttSource("mqtt:bench", cfg, WallClock())
            if not live:  # subscribe once, go away, let the backlog pile up in the broker
                task = asyncio.create_task(source.run(sink))
                await asyncio.wait_for(source.subscribed.wait(), 10)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await publish_all(host, port, topic, payloads)
                source = MqttSource("mqtt:bench", cfg, WallClock())
            start = time.perf_counter()
            task = asyncio.create_task(source.run(sink))
            try:
                await asyncio.wait_for(source.subscribed.wait(), 10)
                if live:
                    start = time.perf_counter()
                    await publish_all(host, port, topic, payloads)
                try:
                    await asyncio.wait_for(sink.done.wait(), 60)
                except TimeoutError:
                    raise SystemExit(f"MQTT: only {sink.count} of {posts} posts arrived "
                                     "(broker max_queued_messages?)") from None
                rates.append(posts / (time.perf_counter() - start))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with store.transaction():  # next run stores the same ids afresh
                store.db.execute("DELETE FROM events")
    finally:
        store.close()
    return rates[0], rates[1]


async def bench_http(posts: int, db: Path) -> tuple[float, int]:
    server = WeiboSim((make_post(i) for i in range(posts)), speed=0,
                      start=T0 + posts, tokens={"bench": ""})
    store = Store(db)
    sink = StoreSink(store, posts)
    clock = WallClock()
    async with serve(server) as url, aiohttp.ClientSession(
            headers={"Authorization": "OAuth2 bench"}) as session:
        poller = WeiboPoller("weibo:bench", url, "search", clock, Limits(clock, 2),
                             params={"q": "#"}, count=200, max_pages=10_000,
                             refresh_every=0)
        start = time.perf_counter()
        await poller.walk(session, sink)
        elapsed = time.perf_counter() - start
    store.close()
    return sink.count / elapsed, poller.requests


@contextlib.contextmanager
def own_mosquitto(folder: Path) -> Any:
    """A mosquitto on a free port with unlimited queues; yields (host, port)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(5)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--broker", default="", help="HOST:PORT (default: start mosquitto)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt's "pending publish calls"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.broker:
            host, _, port_text = args.broker.rpartition(":")
            port = int(port_text)
        else:
            host, port = stack.enter_context(own_mosquitto(Path(tmp)))
        print(f"broker {host}:{port}")
        for per in (1, 100):
            live, drain = await bench_mqtt(host, port, args.posts, per, Path(tmp) / f"m{per}.db")
            print(f"MQTT -> store, {per:>3} post(s)/message: live (publisher running) "
                  f"{live:8,.0f} posts/s; backlog drain {drain:8,.0f} posts/s")
            if per == 1:
                mqtt1 = drain
        http, requests = await bench_http(args.posts, Path(tmp) / "h.db")
        print(f"HTTP poller -> store (sim, 200/page):  {http:8,.0f} posts/s "
              f"({requests} requests)")
    target = 5000
    print(f"target >= {target:,} posts/s over MQTT (1 post/message, consumer side): "
          f"{'met' if mqtt1 >= target else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
