"""Dashboard live view: what open pages cost the daemon during a burst.

    python bench/dashboard.py [--open 700] [--pages 4] [--batches 60] [--every 0.05]

A real ``Daemon`` (SQLite store, HTTP on loopback) holds ``--open`` open mentions;
``--pages`` clients hold ``/api/events`` open like dashboard tabs; then ``--batches``
batches of 10 new mentions arrive ``--every`` seconds apart (a 60x demo replay pushes
about that). Printed: the snapshot a page gets on connect, the patches each page gets
(count, bytes), the time the server spends computing a change (once for all pages),
the event loop's lag meanwhile (a 10 ms probe), and, for comparison, one full
``GET /api/mentions`` (what each page refetched per change before patches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import monitor.dashboard as dashboard
from monitor.app import build_pipeline
from monitor.clock import ScaledClock
from monitor.config import Config, HttpConfig
from monitor.daemon import Daemon
from monitor.sources.base import Batch
from monitor.store import Store
from rules.policy import BrandConfig
from rules.records import Author, Post, PostKind

TOKEN = "bench-token"
BRAND = "快书包"
T0 = 1_779_242_400.0
TEXTS = ("{b}快递太慢了，等了好几天了，差评", "{b}的书包质量真不错，推荐",
         "{b}客服回复太慢了，电话也打不通")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(i: int, at: float) -> Post:
    return Post(id=str(10_000_000 + i), kind=PostKind.STATUS, created_at=at,
                text=TEXTS[i % 3].format(b=BRAND) + f" #{i}",
                author=Author(id=str(i), screen_name=f"顾客{i}", followers_count=100 + i))


async def read_stream(http: aiohttp.ClientSession, base: str, got: dict[str, list[int]]
                      ) -> None:
    async with http.get(base + "/api/events",
                        headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        buf = b""
        async for chunk in r.content.iter_any():
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                event = next((line[7:].decode() for line in block.split(b"\n")
                              if line.startswith(b"event: ")), "comment")
                got.setdefault(event, []).append(len(block) + 2)


async def probe(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - t - 0.01)


async def main(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    port = free_port()
    config = replace(Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,)),)),
                     http=HttpConfig(listen=f"127.0.0.1:{port}", token=TOKEN))
    store = Store(tmp / "state.db")
    clock = ScaledClock(T0, 1.0)
    daemon = Daemon(config, store, build_pipeline(config, store), clock, [])
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run([], stop))
    base = f"http://127.0.0.1:{port}"
    now = clock.now()
    backlog = [post(i, now - 3 * 3600 + i * (3 * 3600 / args.open)) for i in range(args.open)]
    for start in range(0, len(backlog), 200):
        await daemon.ingest(Batch("bench", backlog[start:start + 200]))

    timings: list[float] = []
    original = dashboard.LiveView.refresh

    def timed(self: dashboard.LiveView) -> bytes | None:
        t = time.perf_counter()
        try:
            return original(self)
        finally:
            timings.append(time.perf_counter() - t)

    dashboard.LiveView.refresh = timed  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(base + "/healthz"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        t = time.perf_counter()
        async with http.get(base + "/api/mentions", params={"limit": "10000"},
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            full = len(await r.read())
        full_ms = (time.perf_counter() - t) * 1000
        pages = [{} for _ in range(args.pages)]
        readers = [asyncio.create_task(read_stream(http, base, got)) for got in pages]
        while not all("snapshot" in got for got in pages):  # noqa: ASYNC110 - readers fill it
            await asyncio.sleep(0.05)
        timings.clear()
        lags: list[float] = []
        done = asyncio.Event()
        prober = asyncio.create_task(probe(lags, done))
        t = time.perf_counter()
        for b in range(args.batches):
            await daemon.ingest(Batch("bench", [post(args.open + b * 10 + i, clock.now())
                                                for i in range(10)]))
            await asyncio.sleep(args.every)
        await asyncio.sleep(dashboard.COALESCE * 2)
        burst = time.perf_counter() - t
        done.set()
        await prober
        for r in readers:
            r.cancel()
    stop.set()
    await task
    store.close()

    patches = [got.get("patch", []) for got in pages]
    n = statistics.mean(len(p) for p in patches)
    sizes = [s for p in patches for s in p]
    lags.sort()
    print(f"open mentions {args.open}, pages {args.pages}, burst {args.batches} batches x 10 "
          f"posts every {args.every * 1000:.0f} ms ({burst:.1f} s)")
    print(f"snapshot per page on connect: {pages[0]['snapshot'][0] / 1024:.0f} KB")
    print(f"patches per page: {n:.0f} (of {args.batches} batches), mean "
          f"{statistics.mean(sizes) / 1024:.1f} KB, total per page "
          f"{sum(patches[0]) / 1024:.0f} KB")
    print(f"change computed once for all pages: mean {statistics.mean(timings) * 1000:.1f} ms, "
          f"max {max(timings) * 1000:.1f} ms over {len(timings)} changes")
    print(f"event loop lag (10 ms probe): p50 {lags[len(lags) // 2] * 1000:.1f} ms, p99 "
          f"{lags[int(len(lags) * 0.99)] * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
    print(f"for comparison, one full GET /api/mentions: {full / 1024:.0f} KB in {full_ms:.0f} ms")
    print(f"loadavg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--open", type=int, default=700)
    p.add_argument("--pages", type=int, default=4)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--every", type=float, default=0.05)
    asyncio.run(main(p.parse_args()))
