"""``crisismon weibo-sim``: a Weibo-open-API-shaped server playing a recorded feed as it unfolds.

For demos and for testing the pollers against something that behaves like the real API:

- ``GET /2/search/topics.json?q=``: keyword search of statuses (text compared after the same
  normalisation the daemon applies, so 快書包 finds 快书包);
- ``GET /2/statuses/mentions.json``: statuses that @ the token's account;
- ``GET /2/comments/to_me.json``: comments on the token's account's statuses;
- ``GET /2/comments/by_me.json``: comments the token's account wrote (its replies);

each with Weibo's ``since_id`` / ``max_id`` / ``count`` / ``page`` paging, newest first,
and ``access_token`` (query) or ``Authorization: OAuth2 <token>`` auth. Errors are
Weibo-style JSON ``{"error": ..., "error_code": ..., "request": ...}``.

Time: a post is served once its ``created_at`` is at or before the server's simulated
now, which starts at the feed's first post and runs at ``speed`` (0 = frozen). With
``rebase_to`` (the command line's default: the wall-clock time it starts), every served
``created_at`` is moved by the same offset, so the feed's first post is dated when the
server started and the rest follow at their recorded intervals: a daemon on the wall
clock sees a recorded day as happening now (at ``--speed 1``; faster, the dates run
ahead of the wall clock by the speed-up). Tests
move it with ``POST /admin/clock`` (``{"set": t}``, ``{"advance": s}``, ``{"speed": x}``),
so they never sleep. A line repeating an earlier post's id is a later observation of
that post (counts grown); it replaces the served version once the clock passes the
lines before it.

Faults on demand (constructor or ``POST /admin/faults``): the next N answers fail with
a 5xx, a rate limit of K calls per window per token answered with 429 and
``Retry-After``, slow answers, and bodies cut off mid-way. ``POST /admin/posts`` adds
posts (a JSON array) while running; ``GET /admin/stats`` counts requests.

Paging uses the server's order (created_at, then feed order): a ``since_id``/``max_id``
naming a post the server knows means "after/at that post"; an unknown one is compared
numerically, as Weibo's time-ordered ids are.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import math
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import structlog
from aiohttp import web

from monitor.clock import ScaledClock, SimClock, WallClock
from monitor.feed import feed_problem, open_text
from monitor.normalise import BadInput, normalise_text, parse_time
from rules.records import parse_duration

log = structlog.get_logger(__name__)

MAX_COUNT = 200
DEFAULT_COUNT = 20
DEFAULT_TOKEN = "sim-token"
_encoder = msgspec.json.Encoder()


@dataclass
class Faults:
    """Misbehaviour on demand. Counters (``*_next``) run down as answers are sent."""

    fail_next: int = 0
    """The next N API answers are errors with ``fail_status``."""
    fail_status: int = 500
    rate_limit: int = 0
    """Calls allowed per token per window (0 = unlimited); more get 429."""
    rate_window: float = 3600.0
    """Window length in simulated seconds; windows are aligned (Weibo resets hourly)."""
    slow: float = 0.0
    """Wall seconds every API answer is delayed by."""
    truncate_next: int = 0
    """The next N answers are cut off half-way (the connection drops mid-body)."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CN = timezone(timedelta(hours=8))


def weibo_time(t: float) -> str:
    """``"Wed May 20 08:23:01 +0800 2026"``: Weibo's own format, in China time."""
    d = datetime.fromtimestamp(t, _CN)
    return (f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:02d} "
            f"{d:%H:%M:%S} +0800 {d.year}")


def rebased(obj: dict[str, Any], offset: float) -> dict[str, Any]:
    """A copy of ``obj`` with its ``created_at`` (and that of the status, comment or
    repost it embeds) moved by ``offset`` seconds."""
    out = dict(obj)
    try:
        out["created_at"] = weibo_time(parse_time(obj.get("created_at")) + offset)
    except BadInput:
        return out
    for key in ("status", "retweeted_status", "reply_comment"):
        inner = obj.get(key)
        if isinstance(inner, dict) and "created_at" in inner:
            out[key] = rebased(inner, offset)
    return out


@dataclass(slots=True)
class _Post:
    id: str
    created_at: float
    seq: int
    versions: list[tuple[float, dict[str, Any]]]
    text: str
    author: str
    is_comment: bool
    on_status: str | None

    def current(self, now: float) -> dict[str, Any]:
        best = self.versions[0][1]
        for visible_at, obj in self.versions:
            if visible_at <= now:
                best = obj
        return best


@dataclass
class SimStats:
    """What the server answered, for tests and the benchmark."""

    requests: int = 0
    served: int = 0
    errors: int = 0
    rate_limited: int = 0
    truncated: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id", value.get("idstr"))
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def read_feed_objects(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The objects of a feed file (skipping bad lines and actions) and how many were bad."""
    objs: list[dict[str, Any]] = []
    bad = 0
    with open_text(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError:
                bad += 1
                continue
            if isinstance(obj, dict) and "action" not in obj:
                objs.append(obj)
            elif not isinstance(obj, dict):
                bad += 1
    return objs, bad


class WeiboSim:
    """The server's state: the feed, its simulated clock, tokens, faults and counters."""

    def __init__(self, posts: Iterable[dict[str, Any]] = (), *, speed: float = 1.0,
                 start: float | None = None, tokens: Mapping[str, str] | None = None,
                 faults: Faults | None = None, rebase_to: float | None = None) -> None:
        self.tokens: dict[str, str] = dict(tokens) if tokens is not None \
            else {DEFAULT_TOKEN: ""}
        """Accepted access tokens, each with the uid of the account it belongs to."""
        self.faults = faults or Faults()
        self.stats = SimStats()
        self._posts: dict[str, _Post] = {}
        self._order: list[_Post] = []
        self._times: list[float] = []
        self._pos: dict[str, int] = {}
        self._match_cache: dict[tuple[str, str], list[int]] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        self._seq = 0
        self._latest = -math.inf
        self.add(posts)
        first = self._times[0] if self._times else 0.0
        self._speed = speed
        self._clock: ScaledClock | SimClock = SimClock(first)
        self.set_clock(first if start is None else start, speed)
        self.offset = 0.0 if rebase_to is None else rebase_to - self.now()
        """Seconds added to every served ``created_at`` (see the module docstring)."""

    # ------------------------------------------------------------------ clock
    def now(self) -> float:
        """The server's simulated now."""
        return self._clock.now()

    def set_clock(self, t: float, speed: float | None = None) -> None:
        """Jump the simulated clock to ``t`` (may go back: a demo can rewind)."""
        if speed is not None:
            if speed < 0:
                raise ValueError("speed must not be negative")
            self._speed = speed
        self._clock = ScaledClock(t, self._speed) if self._speed > 0 else SimClock(t)

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward by ``seconds``."""
        self.set_clock(self.now() + max(0.0, seconds))

    # ------------------------------------------------------------------ posts
    def add(self, objs: Iterable[dict[str, Any]]) -> int:
        """Add posts (a repeated id is a later version of that post); returns how many."""
        n = 0
        for obj in objs:
            if not isinstance(obj, dict) or "action" in obj:
                continue
            pid = _ref_id(obj)
            try:
                created = parse_time(obj.get("created_at"))
            except BadInput:
                continue
            if pid is None:
                continue
            known = self._posts.get(pid)
            if known is not None:
                # A later observation: visible once the clock passes what came before it.
                known.versions.append((max(self._latest, created), obj))
                n += 1
                continue
            try:
                text = normalise_text(obj.get("text"))
            except BadInput:
                text = ""
            user = obj.get("user")
            author = (_ref_id(user) or "") if isinstance(user, dict) else ""
            on_status = _ref_id(obj.get("status"))
            self._posts[pid] = _Post(pid, created, self._seq, [(created, obj)], text, author,
                                     on_status is not None, on_status)
            self._seq += 1
            self._latest = max(self._latest, created)
            n += 1
        self._order = sorted(self._posts.values(), key=lambda p: (p.created_at, p.seq))
        self._times = [p.created_at for p in self._order]
        self._pos = {p.id: i for i, p in enumerate(self._order)}
        self._match_cache.clear()
        return n

    def _matching(self, endpoint: str, arg: str) -> list[int]:
        key = (endpoint, arg)
        hit = self._match_cache.get(key)
        if hit is not None:
            return hit
        if endpoint == "search":
            q = normalise_text(arg)
            idx = [i for i, p in enumerate(self._order)
                   if q and not p.is_comment and q in p.text]
        elif endpoint == "by_me":
            idx = [i for i, p in enumerate(self._order) if p.is_comment and p.author == arg]
        elif endpoint == "mentions":
            names = self._screen_names(arg)
            idx = [i for i, p in enumerate(self._order) if not p.is_comment
                   and any(f"@{n}" in p.text for n in names)]
        else:
            idx = [i for i, p in enumerate(self._order) if p.is_comment and p.on_status
                   and (s := self._posts.get(p.on_status)) is not None and s.author == arg]
        self._match_cache[key] = idx
        return idx

    def _screen_names(self, uid: str) -> set[str]:
        names: set[str] = set()
        for p in self._order:
            if p.author == uid:
                user = p.versions[0][1].get("user") or {}
                name = user.get("screen_name") if isinstance(user, dict) else None
                if isinstance(name, str) and name:
                    names.add(normalise_text(name))
        return names

    def query(self, endpoint: str, arg: str, *, since_id: str = "0", max_id: str = "0",
              count: int = DEFAULT_COUNT, page: int = 1) -> tuple[list[dict[str, Any]], int]:
        """One page, newest first, and the total matching (Weibo's ``total_number``)."""
        now = self.now()
        idx = self._matching(endpoint, arg)
        hi = bisect.bisect_right(idx, bisect.bisect_right(self._times, now) - 1)
        lo = 0
        if max_id not in ("", "0"):
            pos = self._pos.get(max_id)
            hi = min(hi, bisect.bisect_right(idx, pos)) if pos is not None \
                else self._numeric_cut(idx, hi, max_id, upper=True)
        if since_id not in ("", "0"):
            pos = self._pos.get(since_id)
            lo = bisect.bisect_right(idx, pos) if pos is not None \
                else self._numeric_cut(idx, hi, since_id, upper=False)
        window = idx[lo:hi] if lo < hi else []
        start = len(window) - (page - 1) * count
        chosen = window[max(0, start - count):max(0, start)]
        items = [self._order[i].current(now) for i in reversed(chosen)]
        if self.offset:
            items = [rebased(obj, self.offset) for obj in items]
        return items, len(window)

    def _numeric_cut(self, idx: list[int], hi: int, ref: str, *, upper: bool) -> int:
        # An id the server never served: compare as numbers (Weibo ids grow with time).
        try:
            n = int(ref)
        except ValueError:
            return 0 if upper else hi
        for j in range(hi):  # the first post past ``ref`` ends max_id / starts since_id
            pid = self._order[idx[j]].id
            if (int(pid) if pid.isdigit() else 0) > n:
                return j
        return hi

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        """The aiohttp application serving the API and the admin endpoints."""
        app = web.Application()
        app.router.add_get("/2/search/topics.json", self._search)
        app.router.add_get("/2/statuses/mentions.json", self._mentions)
        app.router.add_get("/2/comments/to_me.json", self._comments)
        app.router.add_get("/2/comments/by_me.json", self._by_me)
        app.router.add_post("/admin/clock", self._admin_clock)
        app.router.add_post("/admin/faults", self._admin_faults)
        app.router.add_post("/admin/posts", self._admin_posts)
        app.router.add_get("/admin/stats", self._admin_stats)
        return app

    async def _search(self, request: web.Request) -> web.StreamResponse:
        q = request.query.get("q", "")
        if not q:
            return self._error(request, 400, 10008, "param error, see doc for more info")
        return await self._api(request, "search", lambda uid: q, "statuses")

    async def _mentions(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, "mentions", lambda uid: uid, "statuses")

    async def _comments(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, "comments", lambda uid: uid, "comments")

    async def _by_me(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, "by_me", lambda uid: uid, "comments")

    async def _api(self, request: web.Request, endpoint: str, arg: Any,
                   key: str) -> web.StreamResponse:
        self.stats.requests += 1
        f = self.faults
        if f.slow > 0:
            await asyncio.sleep(f.slow)
        token = self._token(request)
        if token is None:
            return self._error(request, 401, 21332, "invalid_access_token")
        if f.fail_next > 0:
            f.fail_next -= 1
            return self._error(request, f.fail_status, 10001, "system error!")
        if f.rate_limit > 0:
            retry = self._over_limit(token)
            if retry is not None:
                self.stats.rate_limited += 1
                return self._error(request, 429, 10023, "User requests out of rate limit!",
                                   {"Retry-After": str(retry)})
        try:
            count = min(MAX_COUNT, max(1, int(request.query.get("count", DEFAULT_COUNT))))
            page = max(1, int(request.query.get("page", 1)))
        except ValueError:
            return self._error(request, 400, 10008, "param error, see doc for more info")
        items, total = self.query(endpoint, arg(self.tokens[token]),
                                  since_id=request.query.get("since_id", "0"),
                                  max_id=request.query.get("max_id", "0"),
                                  count=count, page=page)
        body = _encoder.encode({key: items, "total_number": total, "previous_cursor": 0,
                                "next_cursor": 0})
        self.stats.served += len(items)
        self._count(200)
        if f.truncate_next > 0:
            f.truncate_next -= 1
            self.stats.truncated += 1
            return await self._truncated(request, body)
        return web.Response(body=body, content_type="application/json")

    def _token(self, request: web.Request) -> str | None:
        token = request.query.get("access_token")
        if token is None:
            auth = request.headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme in ("OAuth2", "Bearer"):
                token = value.strip()
        return token if token in self.tokens else None

    def _over_limit(self, token: str) -> int | None:
        f = self.faults
        now = self.now()
        start = math.floor(now / f.rate_window) * f.rate_window
        seen_start, calls = self._windows.get(token, (start, 0))
        if seen_start != start:
            calls = 0
        if calls >= f.rate_limit:
            wait = start + f.rate_window - now
            if self._speed > 0:
                wait /= self._speed
            return max(1, math.ceil(wait))
        self._windows[token] = (start, calls + 1)
        return None

    async def _truncated(self, request: web.Request, body: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:len(body) // 2])
        if request.transport is not None:
            request.transport.close()  # the client sees the body end early
        return resp

    def _error(self, request: web.Request, status: int, code: int, message: str,
               headers: Mapping[str, str] | None = None) -> web.Response:
        self.stats.errors += 1
        self._count(status)
        body = {"error": message, "error_code": code, "request": request.path}
        return web.Response(status=status, body=_encoder.encode(body),
                            content_type="application/json", headers=headers)

    def _count(self, status: int) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    # ------------------------------------------------------------------ admin
    async def _admin_clock(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "speed" in body:
                self.set_clock(self.now(), float(body["speed"]))
            if "set" in body:
                self.set_clock(parse_time(body["set"]))
            if "advance" in body:
                self.advance(float(body["advance"]))
        except (ValueError, TypeError, AttributeError, BadInput) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"now": self.now(), "speed": self._speed})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            names = {f.name: f.type for f in fields(Faults)}
            for key, value in body.items():
                if key not in names:
                    raise ValueError(f"unknown fault {key!r} (known: {', '.join(names)})")
                setattr(self.faults, key, type(getattr(self.faults, key))(value))
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.faults))

    async def _admin_posts(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        objs = body if isinstance(body, list) else [body]
        return web.json_response({"added": self.add(objs), "posts": len(self._order)})

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**asdict(self.stats), "now": self.now(),
                                  "posts": len(self._order)})


@contextlib.asynccontextmanager
async def serve(sim: WeiboSim, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``sim`` until the block ends; yields its base URL (port 0 = a free port)."""
    runner = web.AppRunner(sim.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the only way to learn the port chosen for port 0
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    try:
        yield f"http://{host}:{actual}"
    finally:
        await runner.cleanup()


def parse_token(text: str) -> tuple[str, str]:
    """``TOKEN`` or ``TOKEN:UID`` (the uid whose mentions and comments the token sees)."""
    token, _, uid = text.partition(":")
    if not token:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TOKEN or TOKEN:UID")
    return token, uid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``crisismon weibo-sim`` options (shared with the CLI's subcommand)."""
    parser.add_argument("--feed", required=True, type=Path, help="recorded feed (.jsonl[.gz])")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall second (default 1; 0 = frozen)")
    parser.add_argument("--start", default=None,
                        help="simulated start time (ISO 8601); default the first post")
    parser.add_argument("--recorded-times", action="store_true",
                        help="serve created_at as recorded (default: moved so that the start "
                        "is served as the time the server started, for a daemon on the wall "
                        "clock)")
    parser.add_argument("--token", action="append", type=parse_token, default=[],
                        metavar="TOKEN[:UID]",
                        help=f"accepted access token and its account (default {DEFAULT_TOKEN})")
    parser.add_argument("--rate-limit", type=int, default=0, metavar="K",
                        help="calls per token per window before 429 (default unlimited)")
    parser.add_argument("--rate-window", type=parse_duration, default=parse_duration("1h"),
                        metavar="DURATION", help='rate-limit window (default "1h")')


async def _run(args: argparse.Namespace) -> int:
    objs, bad = read_feed_objects(args.feed)
    tokens = dict(args.token) or {DEFAULT_TOKEN: ""}
    start = parse_time(args.start) if args.start else None
    sim = WeiboSim(objs, speed=args.speed, start=start, tokens=tokens,
                   faults=Faults(rate_limit=args.rate_limit, rate_window=args.rate_window),
                   rebase_to=None if args.recorded_times else WallClock().now())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with serve(sim, args.host, args.port) as url:
        when = "as recorded" if args.recorded_times else \
            f"moved by {sim.offset / 86400:+.2f} days (the start is served as now)"
        print(f"weibo-sim: {len(objs)} posts from {args.feed} ({bad} bad lines skipped) "
              f"on {url}, tokens: {', '.join(tokens)}; times {when}", file=sys.stderr,
              flush=True)
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``crisismon weibo-sim --feed FILE --port N``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="crisismon weibo-sim",
                                     description="Serve a recorded feed as a Weibo-style API.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the server from parsed arguments (the CLI's ``weibo-sim`` subcommand)."""
    if (problem := feed_problem(args.feed)) is not None:
        print(f"crisismon weibo-sim: --feed {problem}", file=sys.stderr)
        return 2
    try:
        start = parse_time(args.start) if args.start else None
    except BadInput as exc:
        print(f"crisismon weibo-sim: --start: {exc}", file=sys.stderr)
        return 2
    del start
    try:
        return asyncio.run(_run(args))
    except OSError as exc:
        print(f"crisismon weibo-sim: cannot serve on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"crisismon weibo-sim: {args.feed}: not UTF-8 ({exc})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
