"""Ingest throughput: posts/s through MQTT into the store, and through the HTTP poller.

    python bench/ingest.py [--posts 20000] [--broker 127.0.0.1:1883]

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
import random
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

from monitor.clock import WallClock  # noqa: E402
from monitor.config import MqttSourceConfig  # noqa: E402
from monitor.sources.base import Batch  # noqa: E402
from monitor.sources.http import Limits, WeiboPoller  # noqa: E402
from monitor.sources.mqtt import MqttSource  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.weibo_sim import WeiboSim, serve  # noqa: E402

T0 = 1_779_240_000.0
TEXTS = ["快书包送货太慢了，客服也不回", "快書包的新品太好喝了，推薦", "今天天气不错 快书包 &amp; 咖啡",
         "快书包杯盖又漏了[抓狂]", "转发微博"]


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


async def bench_mqtt(host: str, port: int, posts: int, per_message: int, db: Path) -> float:
    topic = f"crisismon-bench/{uuid.uuid4().hex}"
    cfg = MqttSourceConfig(type="mqtt", topics=(topic,), host=host, port=port,
                           client_id=f"bench-{uuid.uuid4().hex}", session_expiry=60)  # type: ignore[arg-type]
    store = Store(db)
    sink = StoreSink(store, posts)
    source = MqttSource("mqtt:bench", cfg, WallClock())
    payloads = [json.dumps([make_post(i + j) for j in range(per_message)]
                           if per_message > 1 else make_post(i), ensure_ascii=False).encode()
                for i in range(0, posts, per_message)]
    task = asyncio.create_task(source.run(sink))
    try:
        await asyncio.wait_for(source.subscribed.wait(), 10)
        start = time.perf_counter()
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
        await asyncio.wait_for(sink.done.wait(), 120)
        elapsed = time.perf_counter() - start
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()
    return posts / elapsed


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--broker", default="127.0.0.1:1883")
    args = parser.parse_args()
    host, _, port = args.broker.rpartition(":")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory() as tmp:
        mqtt1 = await bench_mqtt(host, int(port), args.posts, 1, Path(tmp) / "m1.db")
        print(f"MQTT  -> store, 1 post/message  : {mqtt1:8,.0f} posts/s ({args.posts:,} posts)")
        mqtt100 = await bench_mqtt(host, int(port), args.posts, 100, Path(tmp) / "m100.db")
        print(f"MQTT  -> store, 100 posts/message: {mqtt100:8,.0f} posts/s")
        http, requests = await bench_http(args.posts, Path(tmp) / "h.db")
        print(f"HTTP poller -> store (sim, 200/page): {http:8,.0f} posts/s "
              f"({requests} requests)")
    target = 5000
    print(f"target >= {target:,} posts/s over MQTT: {'met' if mqtt1 >= target else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
