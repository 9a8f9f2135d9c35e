"""The Weibo API pollers against the bundled server (``crisismon weibo-sim``) on loopback.

Time is driven, never slept on: the server's clock is set over its admin API and the
pollers run on a manual clock whose sleepers the tests observe and release.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import parse_config
from monitor.feed import FeedStats, read_feeds
from monitor.sources.base import Batch
from monitor.sources.factory import build_sources
from monitor.sources.http import Limits, WeiboApiSource, WeiboPoller
from monitor.sources.recorder import Recorder
from monitor.store import Store
from monitor.weibo_sim import Faults, WeiboSim, serve

T0 = 1_779_240_000.0  # 2026-05-20 09:20 +08:00, a multiple of 600
TOKEN = "tok-1"
OFFICIAL = "7000000002"
TIMEOUT = 10.0


def status(n: int, at: float, text: str = "快书包送货太慢了", uid: int = 42,
           **extra: Any) -> dict[str, Any]:
    return {"id": 5_010_000_000_000_000 + n, "created_at": at, "text": text,
            "user": {"id": uid, "screen_name": f"u{uid}", "followers_count": 10},
            "reposts_count": 0, "comments_count": 0, "attitudes_count": 0, **extra}


class ManualClock:
    """A clock that moves only when the test says; sleepers wait to be released."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, t: float) -> None:
        if t <= self._now:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((t, fut))
        self._changed.set()
        try:
            await fut
        finally:
            self._sleepers = [s for s in self._sleepers if s[1] is not fut]

    async def next_sleep(self) -> float:
        """When the next sleeper wants to wake (waits until someone sleeps)."""
        async with asyncio.timeout(TIMEOUT):
            while not self._sleepers:
                self._changed.clear()
                await self._changed.wait()
        return min(t for t, _ in self._sleepers)

    def advance_to(self, t: float) -> None:
        self._now = max(self._now, t)
        keep = []
        for due, fut in self._sleepers:
            if due > self._now:
                keep.append((due, fut))
            elif not fut.done():
                fut.set_result(None)
        self._sleepers = keep


class StoreSink:
    """Stores batches like ``Daemon.ingest`` does (events + cursor in one transaction)
    and remembers every id it was handed, to prove nothing is handed over twice."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.received: Counter[str] = Counter()
        self.batches: list[Batch] = []
        self._changed = asyncio.Event()

    async def ingest(self, batch: Batch) -> None:
        with self.store.transaction():
            for event in batch.events:
                self.store.add_event(event, 0.0)
            if batch.cursor is not None:
                self.store.set_cursor(batch.source, batch.cursor)
        self.received.update(e.id for e in batch.events)
        self.batches.append(batch)
        self._changed.set()

    async def wait_for(self, n: int) -> None:
        """Until ``n`` distinct posts have arrived."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.received) < n:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def sim() -> AsyncIterator[tuple[WeiboSim, str]]:
    server = WeiboSim([], speed=0, start=T0, tokens={TOKEN: OFFICIAL})
    async with serve(server) as url:
        yield server, url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"OAuth2 {TOKEN}"},
                                     timeout=aiohttp.ClientTimeout(total=2)) as s:
        yield s


def poller(url: str, clock: Any, **kw: Any) -> WeiboPoller:
    options: dict[str, Any] = {"count": 100, "interval": 60.0, "refresh_every": 0.0}
    options.update(kw)
    return WeiboPoller("weibo:test:search:快书包", url, "search", clock, Limits(clock, 2),
                       params={"q": "快书包"}, **options)


async def test_a_burst_is_paged_to_the_cursor_and_recorded(
        sim: tuple[WeiboSim, str], session: aiohttp.ClientSession, tmp_path: Path) -> None:
    server, url = sim
    server.add(status(i, T0 + 10 + i * 0.1) for i in range(450))
    server.add([status(9999, T0 + 5, "别的牌子")])  # not matched by the search
    store = Store(tmp_path / "s.db")
    sink = StoreSink(store)
    clock = ManualClock(T0)
    recorder = Recorder(tmp_path / "rec", clock)
    p = poller(url, clock, recorder=recorder)

    assert await p.walk(session, sink)  # nothing visible yet
    assert sink.received == Counter()
    server.advance(60)
    assert await p.walk(session, sink)
    assert len(sink.received) == 450 and max(sink.received.values()) == 1
    assert p.requests == 1 + 5  # 4 full pages (each repeats the last id) + the short one
    newest = str(5_010_000_000_000_000 + 449)
    assert store.get_cursor(p.name) == newest
    # Stored oldest first: a mention before whatever answers it.
    times = [e.created_at for e in sink.batches[-1].events]
    assert times == sorted(times)

    server.add(status(1000 + i, T0 + 70 + i) for i in range(30))
    server.advance(60)
    assert await p.walk(session, sink)
    assert len(sink.received) == 480 and max(sink.received.values()) == 1

    recorder.close()
    stats = FeedStats()
    replayed = read_feeds(sorted((tmp_path / "rec").iterdir()), stats)
    assert {e.id for e in replayed} == set(sink.received) and stats.skipped == 0
    store.close()


async def test_5xx_and_truncated_bodies_back_off_then_recover(
        sim: tuple[WeiboSim, str], tmp_path: Path) -> None:
    server, url = sim
    server.add(status(i, T0 - 100 + i) for i in range(20))
    server.faults.fail_next = 2
    server.faults.truncate_next = 1
    clock = ManualClock(T0)
    sink = StoreSink(Store(tmp_path / "s.db"))
    source = WeiboApiSource("weibo:test", _http_config(url).sources[0], TOKEN, [],
                            Limits(clock, 2))
    source.pollers = [poller(url, clock)]
    task = asyncio.create_task(source.run(sink))
    try:
        delays = []
        for _ in range(3):  # 500, 500, truncated body
            wake = await clock.next_sleep()
            delays.append(wake - clock.now())
            assert sink.received == Counter()
            clock.advance_to(wake)
        assert 1.0 <= delays[0] <= 2.0 and 2.0 <= delays[1] <= 4.0 and 4.0 <= delays[2] <= 8.0
        await sink.wait_for(20)
        assert await clock.next_sleep() == clock.now() + 60  # healthy again: normal interval
        assert server.stats.by_status == {500: 2, 200: 2}
        assert source.pollers[0].failures == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_429_pauses_until_retry_after_and_keeps_the_partial_walk(
        sim: tuple[WeiboSim, str], session: aiohttp.ClientSession, tmp_path: Path) -> None:
    server, url = sim
    server.add(status(i, T0 - 100 + i) for i in range(25))
    server.set_clock(T0 + 100)  # 100 s into a 600 s window: Retry-After must be 500
    server.faults = Faults(rate_limit=2, rate_window=600)
    clock = ManualClock(T0)
    sink = StoreSink(Store(tmp_path / "s.db"))
    p = poller(url, clock, count=10)
    task = asyncio.create_task(p.run(session, sink))
    try:
        wake = await clock.next_sleep()
        assert wake == clock.now() + 500  # exactly Retry-After, no jitter
        assert p.limits.paused_until == wake
        assert len(sink.received) == 19  # two pages kept, cursor remembers the gap
        assert "|" in (sink.store.get_cursor(p.name) or "")
        server.advance(500)  # the server's window rolls over
        clock.advance_to(wake)
        await sink.wait_for(25)
        assert max(sink.received.values()) == 1
        assert sink.store.get_cursor(p.name) == str(5_010_000_000_000_024)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_slow_server_times_out_and_is_retried(
        sim: tuple[WeiboSim, str], tmp_path: Path) -> None:
    server, url = sim
    server.add([status(1, T0 - 5)])
    server.faults.slow = 0.5
    clock = ManualClock(T0)
    sink = StoreSink(Store(tmp_path / "s.db"))
    p = poller(url, clock)
    async with aiohttp.ClientSession(headers={"Authorization": f"OAuth2 {TOKEN}"},
                                     timeout=aiohttp.ClientTimeout(total=0.1)) as session:
        task = asyncio.create_task(p.run(session, sink))
        try:
            wake = await clock.next_sleep()
            assert p.failures == 1 and sink.received == Counter()
            server.faults.slow = 0
            clock.advance_to(wake)
            await sink.wait_for(1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_mentions_comments_search_and_count_refresh(
        sim: tuple[WeiboSim, str], session: aiohttp.ClientSession, tmp_path: Path) -> None:
    server, url = sim
    official_post = status(1, T0 - 50, "新品上市", uid=int(OFFICIAL))
    official_post["user"]["screen_name"] = "小满咖啡客服"
    comment = {**status(2, T0 - 40, "快书包杯盖漏了"), "status": {"id": official_post["id"]}}
    at_us = status(3, T0 - 30, "@小满咖啡客服 你们管不管")
    traditional = status(4, T0 - 20, "快書包送貨太慢")
    server.add([official_post, comment, at_us, traditional])
    clock = ManualClock(T0)
    sink = StoreSink(Store(tmp_path / "s.db"))
    limits = Limits(clock, 2)
    got = {}
    for endpoint, params in (("mentions", {}), ("comments", {}), ("search", {"q": "快书包"})):
        p = WeiboPoller(f"w:{endpoint}", url, endpoint, clock, limits, params=params,  # type: ignore[arg-type]
                        refresh_every=0)
        before = set(sink.received)
        await p.walk(session, sink)
        got[endpoint] = set(sink.received) - before
    ids = [str(o["id"]) for o in (official_post, comment, at_us, traditional)]
    assert got == {"mentions": {ids[2]}, "comments": {ids[1]}, "search": {ids[3]}}

    # A known post seen again with more reposts is handed on (the pipeline makes it a
    # spread update); the refresh is what sees it again.
    server.add([{**traditional, "reposts_count": 80}])
    p = WeiboPoller("w:search", url, "search", clock, limits, params={"q": "快书包"},
                    refresh_every=300)
    clock.advance_to(T0 + 301)
    await p.poll(session, sink)
    again = [e for b in sink.batches[-1:] for e in b.events]
    assert [(e.id, e.reposts_count) for e in again] == [(ids[3], 80)]  # type: ignore[union-attr]
    assert sink.batches[-1].cursor is None  # a refresh never moves the cursor


def _http_config(url: str, **extra: str) -> Any:
    more = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return parse_config(f"""
[[brands]]
name = "快书包"
keywords = ["快书包"]

[[sources]]
type = "weibo_api"
brand = "快书包"
url = "{url}"
token = "env:CRISISMON_TEST_WEIBO_TOKEN"
endpoints = ["search"]
count = 50
refresh_every = "0s"
interval = "1m"
{more}""")


async def test_a_daemon_restart_mid_stream_loses_and_duplicates_nothing(
        sim: tuple[WeiboSim, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, url = sim
    monkeypatch.setenv("CRISISMON_TEST_WEIBO_TOKEN", TOKEN)
    server.add(status(i, T0 - 300 + i) for i in range(240))
    config = _http_config(url, max_pages="2")
    db = tmp_path / "state.db"
    received: Counter[str] = Counter()

    # First life: the walk is longer than max_pages, so it is cut after two pages.
    store = Store(db)
    clock = ManualClock(T0)
    [source] = build_sources(config, store, clock)
    sink = StoreSink(store)
    task = asyncio.create_task(source.run(sink))
    await sink.wait_for(99)
    task.cancel()  # the daemon stops mid-stream
    with contextlib.suppress(asyncio.CancelledError):
        await task
    received.update(sink.received)
    cursor = store.get_cursor("weibo:快书包:search:快书包")
    assert cursor and "|" in cursor  # an unfinished walk, remembered durably
    store.close()

    # While it is down, more posts appear.
    server.add(status(500 + i, T0 + i) for i in range(30))
    server.advance(60)

    # Second life: resumes the gap, then the new posts; nothing fetched twice.
    store = Store(db)
    [source] = build_sources(config, store, clock)
    sink = StoreSink(store)
    task = asyncio.create_task(source.run(sink))
    try:
        while len(received | sink.received) < 270:
            await clock.next_sleep()
            clock.advance_to(await clock.next_sleep())
            await asyncio.sleep(0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    received.update(sink.received)
    assert len(received) == 270
    assert max(received.values()) == 1
    assert store.count_events() == 270
    assert "|" not in (store.get_cursor("weibo:快书包:search:快书包") or "|")
    store.close()
