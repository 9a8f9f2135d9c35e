"""Pollers for a Weibo-style open API: one per brand and endpoint (and search keyword).

Each poll walks the endpoint's pages newest first (``since_id`` = the stored cursor,
``max_id`` moving down) until a short page says the cursor is reached, so a burst of
any size loses nothing. The walk's posts go to the sink as one batch, oldest first,
with the new cursor in the same transaction: the cursor advances only once the posts
are stored. A walk cut short (an error, or ``max_pages``) stores what it fetched with a
cursor that remembers where the walk stopped (``since|max_id|newest``), so the next
poll (or the next daemon) finishes the gap instead of starting it again.

Every so often (``refresh_every``) page 1 is fetched again without ``since_id``: posts
seen before come back with their current counts, and the pipeline turns a grown
``reposts_count`` into a spread update for crisis detection.

Failures: timeouts, connection errors, truncated bodies and 5xx back off exponentially
with jitter; a 429 (or Weibo's rate-limit error codes) pauses every poller sharing the
token until ``Retry-After`` (else the next hourly window). A failing endpoint is logged
once when it starts failing and once when it recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import structlog

from monitor.clock import Clock
from monitor.config import HttpSourceConfig, WeiboEndpoint
from monitor.retry import FailureLog, backoff, parse_retry_after
from monitor.sources.base import Batch, Sink
from monitor.sources.edge import Edge
from monitor.sources.recorder import Recorder
from rules.records import Event

log = structlog.get_logger(__name__)

ENDPOINTS: dict[str, tuple[str, str]] = {
    "search": ("/2/search/topics.json", "statuses"),
    "mentions": ("/2/statuses/mentions.json", "statuses"),
    "comments": ("/2/comments/to_me.json", "comments"),
    "replies": ("/2/comments/by_me.json", "comments"),
}
"""Endpoint -> (path, key of the list in the answer)."""
RATE_LIMIT_CODES = frozenset({10022, 10023, 10024})
"""Weibo's "out of rate limit" error codes (IP, user, user per API)."""
BACKOFF_BASE = 2.0
HOURLY = 3600.0
_decoder = msgspec.json.Decoder()


class FetchError(Exception):
    """A page could not be fetched; retried after ``retry_after`` or with backoff."""

    def __init__(self, reason: str, retry_after: float | None = None,
                 rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass(frozen=True, slots=True)
class WalkCursor:
    """Where a poller is: ``since`` (all before it stored) and an unfinished walk, if any."""

    since: str | None = None
    top: str | None = None
    """The walk stopped here (next page: ``max_id=top``)."""
    newest: str | None = None
    """The newest id of the unfinished walk: the cursor once the walk is done."""

    @classmethod
    def parse(cls, text: str | None) -> WalkCursor:
        if not text:
            return cls()
        since, top, newest = ([*text.split("|"), "", ""])[:3]
        return cls(since or None, top or None, newest or None)

    def __str__(self) -> str:
        if self.top is None:
            return self.since or ""
        return f"{self.since or ''}|{self.top}|{self.newest or ''}"


class Limits:
    """What pollers sharing one token share: a concurrency limit, a pause after a 429,
    and an optional hourly request budget."""

    def __init__(self, clock: Clock, concurrency: int, requests_per_hour: int = 0) -> None:
        self.clock = clock
        self.semaphore = asyncio.Semaphore(concurrency)
        self.requests_per_hour = requests_per_hour
        self.paused_until = 0.0
        self._window = -1.0
        self._calls = 0

    def pause(self, until: float) -> None:
        """Hold every request on this token until ``until`` (a rate-limit window)."""
        self.paused_until = max(self.paused_until, until)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the pause, the budget and a free slot, in that order."""
        while True:
            now = self.clock.now()
            if now < self.paused_until:
                await self.clock.sleep_until(self.paused_until)
                continue
            if self.requests_per_hour:
                window = now - now % HOURLY
                if window != self._window:
                    self._window, self._calls = window, 0
                if self._calls >= self.requests_per_hour:
                    await self.clock.sleep_until(window + HOURLY)
                    continue
                self._calls += 1
            break
        async with self.semaphore:
            yield


def _item_id(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get("idstr", obj.get("id"))
    if value is None or isinstance(value, bool | dict | list):
        return None
    return str(value)


class WeiboPoller:
    """Polls one endpoint (one keyword, for search) and keeps its own cursor."""

    def __init__(self, name: str, url: str, endpoint: WeiboEndpoint, clock: Clock,
                 limits: Limits, *, params: dict[str, str] | None = None,
                 cursor: str | None = None, count: int = 100, max_pages: int = 50,
                 interval: float = 60.0, backoff_max: float = 300.0,
                 refresh_every: float = 300.0, recorder: Recorder | None = None,
                 rng: random.Random | None = None) -> None:
        path, self.key = ENDPOINTS[endpoint]
        self.name = name
        self.url = url.rstrip("/") + path
        self.clock = clock
        self.limits = limits
        self.params = params or {}
        self.cursor = WalkCursor.parse(cursor)
        self.count = count
        self.max_pages = max_pages
        self.interval = interval
        self.backoff_max = backoff_max
        self.refresh_every = refresh_every
        self.recorder = recorder
        self.rng = rng or random.Random()
        self.edge = Edge(name)
        self.health = FailureLog(log, "source failing", "source recovered", source=name)
        self.requests = 0
        self._last_refresh = clock.now()

    async def run(self, session: aiohttp.ClientSession, sink: Sink) -> None:
        """Poll until cancelled; never stops on a failure."""
        log.info("poller started", source=self.name, cursor=str(self.cursor) or None)
        while True:
            try:
                complete = await self.poll(session, sink)
            except FetchError as exc:
                wait = self._failed(exc)
            else:
                self.health.succeeded()
                # An unfinished walk (max_pages reached) goes on at once.
                wait = self.interval if complete else 0.0
            await self.clock.sleep_until(self.clock.now() + wait)

    async def poll(self, session: aiohttp.ClientSession, sink: Sink) -> bool:
        """One walk (and a refresh when due); True when the walk reached the cursor."""
        complete = await self.walk(session, sink)
        if complete and self.refresh_every and \
                self.clock.now() >= self._last_refresh + self.refresh_every:
            await self.refresh(session, sink)
        return complete

    async def walk(self, session: aiohttp.ClientSession, sink: Sink) -> bool:
        """Fetch pages newest first down to the cursor and store them with the new cursor."""
        cur = self.cursor
        top, newest = cur.top, cur.newest
        events: list[Event] = []
        raws: list[dict[str, Any]] = []
        rejected = 0
        complete = False
        try:
            for _ in range(self.max_pages):
                items = await self.fetch(session, since_id=cur.since, max_id=top)
                if top is None and newest is None and items:
                    newest = _item_id(items[0])
                fresh = [it for it in items if top is None or _item_id(it) != top]
                got = self.edge.accept(fresh, self.name)
                events.extend(got.events)
                raws.extend(got.raw)
                rejected += got.rejected
                last = next((i for i in map(_item_id, reversed(items)) if i), None)
                if len(items) < self.count or last is None or last == top:
                    complete = True
                    break
                top = last
        except FetchError:
            # Keep what was fetched, with a cursor that finishes the gap on the next try.
            if top is not None:
                await self._store(sink, events, raws, rejected, WalkCursor(cur.since, top, newest))
            raise
        if complete:
            done = WalkCursor(newest or cur.since)
        else:
            done = WalkCursor(cur.since, top, newest)
            log.warning("burst longer than max_pages; finishing it on the next poll",
                        source=self.name, max_pages=self.max_pages, cursor=str(done))
        if events or rejected or done != cur:
            await self._store(sink, events, raws, rejected, done)
        return complete

    async def refresh(self, session: aiohttp.ClientSession, sink: Sink) -> None:
        """Fetch the newest page again so grown counts of known posts are seen."""
        items = await self.fetch(session, since_id=None, max_id=None)
        self._last_refresh = self.clock.now()
        got = self.edge.accept(items, self.name)
        if got.events:
            await self._store(sink, got.events, got.raw, got.rejected, None)

    async def fetch(self, session: aiohttp.ClientSession, *, since_id: str | None,
                    max_id: str | None) -> list[Any]:
        """One page: the list of posts, or FetchError saying why not."""
        params = {**self.params, "count": str(self.count)}
        if since_id:
            params["since_id"] = since_id
        if max_id:
            params["max_id"] = max_id
        async with self.limits.slot():
            self.requests += 1
            try:
                async with session.get(self.url, params=params) as resp:
                    body = await resp.read()
                    status, headers = resp.status, resp.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise FetchError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        return self._page(status, headers, body)

    def _page(self, status: int, headers: Any, body: bytes) -> list[Any]:
        try:
            data = _decoder.decode(body) if body else None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            data = None
        code = data.get("error_code") if isinstance(data, dict) else None
        if status == 429 or code in RATE_LIMIT_CODES:
            wait = parse_retry_after(headers.get("Retry-After"), self.clock.now())
            if wait is None:  # Weibo's windows are hourly: wait for the next one
                now = self.clock.now()
                wait = HOURLY - now % HOURLY
            self.limits.pause(self.clock.now() + wait)
            raise FetchError(f"rate limited (HTTP {status}, error_code {code})", wait, True)
        if status != 200 or code is not None:
            message = data.get("error") if isinstance(data, dict) else None
            raise FetchError(f"HTTP {status}" + (f" error_code {code}: {message}" if code else ""),
                             parse_retry_after(headers.get("Retry-After"), self.clock.now())
                             if status >= 500 else None)
        if not isinstance(data, dict):
            raise FetchError("answer is not a JSON object (truncated?)")
        items = data.get(self.key, [])
        if not isinstance(items, list):
            raise FetchError(f'"{self.key}" is not a list')
        return items

    async def _store(self, sink: Sink, events: list[Event], raws: Sequence[dict[str, Any]],
                     rejected: int, cursor: WalkCursor | None) -> None:
        if self.recorder is not None:
            self.recorder.write(raws)
        # Oldest first, as the posts happened: a mention before the official reply to it.
        events.sort(key=lambda e: e.created_at)
        await sink.ingest(Batch(self.name, events, None if cursor is None else str(cursor),
                                rejected))
        if cursor is not None:
            self.cursor = cursor

    @property
    def failures(self) -> int:
        """Failed polls in a row (0 once one works)."""
        return self.health.failures

    @property
    def failures_total(self) -> int:
        """Failed polls since start (``crisismon_source_failures_total``)."""
        return self.health.total

    def _failed(self, exc: FetchError) -> float:
        failures = self.health.failed(exc)
        if exc.retry_after is not None:  # the server said when: no jitter, no guessing
            return exc.retry_after
        # Jitter: pollers must not retry in step.
        return backoff(failures, base=BACKOFF_BASE, cap=self.backoff_max, rand=self.rng.random)


class WeiboApiSource:
    """All pollers of one ``[[sources]]`` table: one session, one token, shared limits."""

    def __init__(self, name: str, config: HttpSourceConfig, token: str,
                 pollers: Sequence[WeiboPoller], limits: Limits) -> None:
        self.name = name
        self.config = config
        self.token = token
        self.pollers = list(pollers)
        self.limits = limits

    async def run(self, sink: Sink) -> None:
        """Run every poller until cancelled."""
        headers = {"Authorization": f"OAuth2 {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=float(self.config.timeout))
        connector = aiohttp.TCPConnector(limit=self.config.concurrency)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                         connector=connector) as session, \
                asyncio.TaskGroup() as tg:
            for poller in self.pollers:
                tg.create_task(poller.run(session, sink), name=f"poller:{poller.name}")


def build_weibo_source(config: HttpSourceConfig, token: str, keywords: Sequence[str],
                       clock: Clock, cursors: dict[str, str | None] | None = None,
                       recorder: Recorder | None = None, name: str = "") -> WeiboApiSource:
    """The source for one config table: a poller per endpoint, and per keyword for search.

    ``cursors`` maps poller names to their stored cursors (see ``poller_names``).
    """
    name = name or config.name or f"weibo:{config.brand}"
    limits = Limits(clock, config.concurrency, config.requests_per_hour)
    pollers = []
    for poller_name, endpoint, params in poller_specs(name, config, keywords):
        pollers.append(WeiboPoller(
            poller_name, config.url, endpoint, clock, limits, params=params,
            cursor=(cursors or {}).get(poller_name), count=config.count,
            max_pages=config.max_pages, interval=float(config.interval),
            backoff_max=float(config.backoff_max), refresh_every=float(config.refresh_every),
            recorder=recorder))
    return WeiboApiSource(name, config, token, pollers, limits)


def poller_specs(name: str, config: HttpSourceConfig,
                 keywords: Sequence[str]) -> list[tuple[str, WeiboEndpoint, dict[str, str]]]:
    """(poller name, endpoint, query) for each poller; the name keys its stored cursor."""
    specs: list[tuple[str, WeiboEndpoint, dict[str, str]]] = []
    for endpoint in config.endpoints:
        if endpoint == "search":
            specs.extend((f"{name}:search:{kw}", endpoint, {"q": kw}) for kw in keywords)
        else:
            specs.append((f"{name}:{endpoint}", endpoint, {}))
    return specs
