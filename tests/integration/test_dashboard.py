"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

A real ``Daemon`` serves on a free loopback port with a scaled clock (1x, so the page's
countdown runs at wall speed); posts are ingested the way sources hand them over. The
tests use the page the way a team does all day: signed in by the printed link, reloaded,
behind a reverse proxy that answers 502 while the daemon restarts, after a token change,
with 700 open mentions and an open P1 incident, and acting on a card while a burst of
posts arrives. Screenshots go to ``test-artifacts/`` (gitignored; ``CRISISMON_SHOTS``
names another folder) for a person to look at; measured reconnect times are printed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

import monitor.api
import monitor.dashboard  # noqa: F401  (registers the dashboard's routes)
from monitor.app import build_pipeline
from monitor.clock import ScaledClock
from monitor.config import Config, HttpConfig, HttpUserConfig
from monitor.daemon import Daemon
from monitor.sources.base import Batch
from monitor.store import Store
from rules.policy import BrandConfig
from rules.records import Author, Post, PostKind

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CRISISMON_SHOTS") or ROOT / "test-artifacts")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "dash-test-token"
BRAND = "快书包"
T0 = 1_779_242_400.0  # 2026-05-20 10:00 +08:00
WAIT = 20.0
LOADED = "document.body && document.body.dataset.loaded === '1'"
LIVE = "document.getElementById('live').textContent === '实时'"
SIGNIN = "document.body.dataset.signin === '1' && !document.getElementById('signin').hidden"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(pid: str, text: str, at: float, followers: int = 120,
         name: str = "顾客小李") -> Post:
    return Post(id=pid, kind=PostKind.STATUS, created_at=at, text=text,
                author=Author(id="42", screen_name=name, followers_count=followers))


def card(pid: str) -> str:
    return f"document.querySelector('[data-post-id=\"{pid}\"]')"


class Cdp:
    """The few DevTools-protocol calls the tests need, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.requested: list[str] = []
        """Every URL the page asked for (``Network.requestWillBeSent``)."""
        self.reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("method") == "Network.requestWillBeSent":
                self.requested.append(data["params"]["request"]["url"])
            fut = self.pending.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.ids] = fut
        await self.ws.send_json({"id": self.ids, "method": method, "params": params})
        data = await asyncio.wait_for(fut, WAIT)
        if "error" in data:
            raise AssertionError(f"{method}: {data['error']}")
        return dict(data["result"])

    async def js(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                              awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def until(self, expression: str, what: str, wait: float = WAIT) -> Any:
        """Poll the page until ``expression`` is truthy (the page's own timers drive it)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                value = await self.js(expression)
            except AssertionError:  # mid-navigation (no body yet): ask again
                value = None
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def open(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def size(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=2 if mobile else 1, mobile=mobile)

    async def screenshot(self, name: str) -> Path:
        data = await self.send("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def busy_seconds(self) -> float:
        """Main-thread task time so far (seconds): layout, style, script, paint."""
        metrics = (await self.send("Performance.getMetrics"))["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Cdp]:
    """Headless Debian chromium; yields a DevTools session on its first page."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: apt-get install -y chromium "
                             "(.ci/run does this)")
    profile = tempfile.mkdtemp(prefix="crisismon-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "--window-size=1366,900", "about:blank",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + WAIT
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.returncode is not None:
                raise AssertionError("chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                pages = [t for t in await r.json() if t["type"] == "page"]
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"],
                                       max_msg_size=64 << 20) as ws:
                cdp = Cdp(ws)
                for domain in ("Page", "Runtime", "Network", "Performance"):
                    await cdp.send(f"{domain}.enable")
                await cdp.size(1366, 900)
                try:
                    yield cdp
                finally:
                    cdp.reader.cancel()
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


class Server:
    """A daemon on a fixed port and store, which the test can stop and start again
    (a restart), with the same or another token."""

    def __init__(self, tmp: Path, token: str = TOKEN, **http: Any) -> None:
        self.http = http
        """More ``HttpConfig`` fields (users, TLS)."""
        self.port = free_port()
        self.db = tmp / "state.db"
        self.token = token
        self.clock = ScaledClock(T0, 1.0)
        self.daemon: Daemon | None = None
        self.stop_event: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.store: Store | None = None

    @property
    def base(self) -> str:
        scheme = "https" if self.http.get("tls_cert") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> Daemon:
        config = replace(Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,),
                                                    official_accounts=("1650000001",)),)),
                         http=HttpConfig(listen=f"127.0.0.1:{self.port}", token=self.token,
                                         **self.http))
        self.store = Store(self.db)
        # The daemon's time runs on from where it stopped (one clock across restarts).
        self.clock = ScaledClock(self.clock.now(), 1.0)
        self.daemon = Daemon(config, self.store, build_pipeline(config, self.store),
                             self.clock, [])
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.daemon.run([], self.stop_event), name="daemon")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/healthz"):
                        return self.daemon
                await asyncio.sleep(0.02)
        raise AssertionError("the daemon did not start listening")

    async def stop(self) -> None:
        assert self.stop_event is not None and self.task is not None and self.store
        self.stop_event.set()
        await asyncio.wait_for(self.task, 15)
        self.store.close()


class Proxy:
    """A reverse proxy in front of the daemon, like nginx: streams answers through,
    and answers 502 when the daemon does not (or when told to, ``down``)."""

    HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
           "upgrade", "content-encoding"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.down = False
        self.bad_gateways = 0
        self.urls: list[str] = []
        self.upstreams: set[aiohttp.ClientResponse] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.urls.append(str(request.rel_url))
        if self.down:
            self.bad_gateways += 1
            return web.Response(status=502, text="502 Bad Gateway")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP}
        try:
            up = await self.http.request(request.method, self.upstream + str(request.rel_url),
                                         headers=headers, data=await request.read(),
                                         allow_redirects=False)
        except aiohttp.ClientError:
            self.bad_gateways += 1
            return web.Response(status=502, text="502 Bad Gateway")
        out = CIMultiDict((k, v) for k, v in up.headers.items() if k.lower() not in self.HOP)
        resp = web.StreamResponse(status=up.status, headers=out)
        await resp.prepare(request)
        self.upstreams.add(up)
        try:
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass  # the upstream went away: the browser's answer ends here
        finally:
            self.upstreams.discard(up)
            up.release()
        return resp

    def cut(self) -> None:
        """Lose the upstream: open streams end now, new requests get 502."""
        self.down = True
        for up in list(self.upstreams):
            up.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            self.http = http
            try:
                yield self
            finally:
                self.down = True
                await runner.cleanup()


@dataclass
class Env:
    server: Server
    cdp: Cdp

    @property
    def daemon(self) -> Daemon:
        assert self.server.daemon is not None
        return self.server.daemon

    @property
    def base(self) -> str:
        return self.server.base


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    server = Server(tmp_path)
    await server.start()
    try:
        async with chromium() as cdp:
            yield Env(server, cdp)
    finally:
        if server.task is not None and not server.task.done():
            await server.stop()


async def sign_in(env: Env, base: str | None = None) -> None:
    await env.cdp.open(f"{base or env.base}/dashboard?token={TOKEN}")
    await env.cdp.until(LOADED, "the page to load")
    await env.cdp.until(LIVE, "the live stream")


async def test_token_or_session_is_required_and_answers_are_not_cached(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/api/mentions?open=1", "/api/incidents", "/api/events",
                     "/api/session"):
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Cookie": "crisismon_session=v1.-.99999999999.forged"}):
                async with http.get(env.base + path, headers=headers) as r:
                    assert r.status == 401, path
                    assert r.headers["Cache-Control"] == "no-store"
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
            # ?token= in an API address is no longer a way in: it ends up in access logs.
            async with http.get(env.base + path, params={"token": TOKEN}) as r:
                assert r.status == 401, path
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/mentions", "/api/incidents", "/api/session", "/api/audit"):
            async with http.get(env.base + path, headers=auth) as r:
                assert r.status == 200, path
                assert r.headers["Cache-Control"] == "no-store", path
                assert r.headers["X-Content-Type-Options"] == "nosniff", path
        async with http.get(env.base + "/api/events", headers=auth) as r:
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            first = await r.content.readuntil(b"\n\n")
            assert b"retry:" in first or b"event: hello" in first
        # The page itself holds no data: without a session it is the sign-in form.
        async with http.get(env.base + "/dashboard") as r:
            assert r.status == 200
            assert 'id="signin"' in await r.text()
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(env.base + "/dashboard?token=wrong",
                            allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/dashboard?signin=failed"
            assert "Set-Cookie" not in r.headers


async def test_signed_in_by_link_then_reload_bookmark_and_sign_out(env: Env) -> None:
    cdp, daemon = env.cdp, env.daemon
    now = daemon.clock.now()
    await daemon.ingest(Batch("test", [post("9001", f"{BRAND}送货太慢了，客服也不回[怒]", now - 30,
                                            followers=25_000)]))
    await sign_in(env)
    # The link's token left the address bar and the history (a redirect, not a rewrite).
    assert await cdp.js("location.href") == f"{env.base}/dashboard"
    history = await cdp.send("Page.getNavigationHistory")
    assert not any("token=" in e["url"] for e in history["entries"]), history
    cookies = (await cdp.send("Network.getCookies", urls=[env.base]))["cookies"]
    session = next(c for c in cookies if c["name"] == "crisismon_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict", session
    assert TOKEN not in session["value"]
    assert await cdp.js("document.cookie") == ""  # no script can read it
    assert await cdp.js("document.querySelectorAll('#mentions .mention').length") == 1

    # Reload, and a bookmark opened later: the cookie signs in, no raw JSON error.
    await cdp.send("Page.reload")
    await cdp.until(LOADED, "the page after a reload")
    await cdp.until(LIVE, "the stream after a reload")
    await cdp.open(f"{env.base}/dashboard")
    await cdp.until(LOADED + f" && !!{card('9001')}", "the bookmarked page")
    # No request carried the token: not the stream, not the data.
    urls = cdp.requested[1:]  # after the sign-in link itself
    assert any("/api/events" in u for u in urls), urls
    assert not any("token" in u for u in urls), urls

    # Sign out: the sign-in form, and it stays so after a reload.
    await cdp.js("document.getElementById('signout').click()")
    await cdp.until(SIGNIN, "the sign-in form after signing out")
    await cdp.send("Page.reload")
    await cdp.until(SIGNIN, "the sign-in form after a reload")
    await cdp.screenshot("dashboard-signin.png")
    assert await cdp.js("document.querySelectorAll('.mention').length") == 0
    # Signing in by the form.
    await cdp.js(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
                 "document.querySelector('#signin-form button').click()")
    await cdp.until(LOADED + f" && !!{card('9001')}", "the page after the sign-in form")


async def test_live_mention_countdown_ack_and_script_as_text(env: Env) -> None:
    cdp, daemon = env.cdp, env.daemon
    now = daemon.clock.now()
    name = "\x1b[2J\u202e坏人"
    await daemon.ingest(Batch("test", [post("9001", f"{BRAND}送货太慢了，客服也不回[怒]", now - 30,
                                            followers=25_000, name=name)]))
    await sign_in(env)
    assert await cdp.js("document.querySelectorAll('#mentions .mention').length") == 1
    # The author's control characters and bidi override do not reach the page.
    assert await cdp.js(f"{card('9001')}.querySelector('.author').textContent") == "@[2J坏人"

    # A new mention appears without a reload, patched in over the stream.
    await cdp.js(f"window.__marker = 'same page'; {card('9001')}.__same = 1")
    xss = f"{BRAND}太差了<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
    await daemon.ingest(Batch("test", [post("9002", xss, daemon.clock.now())]))
    await cdp.until(f"!!{card('9002')}", "the live mention")
    assert await cdp.js("window.__marker") == "same page"
    assert await cdp.js(f"{card('9001')}.__same") == 1  # the old card was not redrawn

    # The post's markup is shown as text and never runs.
    shown = await cdp.js(f"{card('9002')}.querySelector('.text').textContent")
    assert "<script>window.__pwned=1</script>" in shown
    assert await cdp.js("typeof window.__pwned") == "undefined"
    assert await cdp.js("document.querySelectorAll('#mentions script, #mentions img')"
                        ".length") == 0

    # The countdown runs (the daemon's clock drives it; 1x here, so wall seconds).
    sel = f"{card('9001')}.querySelector('.countdown').textContent"
    first = await cdp.js(sel)
    assert first.startswith("剩 4:")
    await cdp.until(f"{sel} !== {json.dumps(first)}", "the countdown to move")

    # Ack: the button sends it, the daemon records it, the page shows who.
    await cdp.js("document.querySelector('#who').value = '小王';"
                 f"{card('9001')}.querySelector('button.ack').click()")
    await cdp.until(f"({card('9001')}.querySelector('.acked') || {{}})"
                    ".textContent === '已确认 · 小王'", "the ack to show")
    row = daemon.store.db.execute("SELECT acked_by FROM mentions WHERE post_id = '9001'")
    assert row.fetchone()[0] == "小王"


async def retries(proxy: Proxy, when: str) -> None:
    """The page tries again (and gets another 502) within the backoff's cap."""
    tries = proxy.bad_gateways
    deadline = time.monotonic() + 5  # the cap (3 s) plus jitter and a margin
    while proxy.bad_gateways <= tries:  # the browser's requests move it
        assert time.monotonic() < deadline, f"the page stopped retrying {when}"
        await asyncio.sleep(0.05)


async def test_restart_behind_a_proxy_502_then_back_and_resynced(env: Env) -> None:
    """The daemon restarts behind a reverse proxy that answers 502 meanwhile: the page
    says the data is stale within seconds, keeps retrying, and is live and current again
    shortly after the daemon is back, without a reload."""
    cdp, server = env.cdp, env.server
    async with Proxy(server.base).running() as proxy:
        await env.daemon.ingest(Batch("test", [post("7001", f"{BRAND}怎么还没发货",
                                                    env.daemon.clock.now() - 20)]))
        await sign_in(env, proxy.base)
        assert await cdp.js(f"!!{card('7001')}")
        await cdp.js("window.__marker = 'no reload'")

        # 1. The proxy loses its upstream for a while (502s), the daemon stays up.
        proxy.cut()
        lost = time.monotonic()
        await cdp.until("!document.getElementById('banner').hidden", "the stale banner")
        banner_after = time.monotonic() - lost
        text = await cdp.js("document.getElementById('banner-text').textContent")
        assert "数据已" in text and "未更新" in text, text
        await cdp.screenshot("dashboard-stale-banner.png")
        await retries(proxy, "after a 502")
        proxy.down = False
        back = time.monotonic()
        await cdp.until(LIVE + " && document.getElementById('banner').hidden",
                        "the page to reconnect after the 502s")
        after_502 = time.monotonic() - back

        # 2. The daemon restarts (same token): 502 while it is down.
        await server.stop()
        await cdp.until("!document.getElementById('banner').hidden", "the banner again")
        assert await cdp.js("document.getElementById('incidents').textContent")\
            != "没有进行中的危机事件"  # never claims "no crisis" on stale data
        await retries(proxy, "during the restart")
        daemon = await server.start()
        up = time.monotonic()
        # Posted while the page was away: the reconnect's snapshot brings it (resync).
        await daemon.ingest(Batch("test", [post("7002", f"{BRAND}客服电话打不通",
                                                daemon.clock.now())]))
        await cdp.until(LIVE + f" && !!{card('7002')} && !!{card('7001')}",
                        "the page to reconnect and resync after the restart")
        after_restart = time.monotonic() - up
        assert await cdp.js("window.__marker") == "no reload"
        assert not any("token" in u for u in proxy.urls[1:]), proxy.urls
        print(f"\nstale banner {banner_after:.1f} s after the proxy lost the daemon; "
              f"live again {after_502:.1f} s after the 502s ended; "
              f"{after_restart:.1f} s after the restarted daemon listened "
              f"(loadavg {os.getloadavg()[0]:.2f})")
        assert after_502 < 5 and after_restart < 5  # the backoff is capped at 3 s


async def test_token_change_sends_the_page_to_sign_in(env: Env) -> None:
    cdp, server = env.cdp, env.server
    await sign_in(env)
    await server.stop()
    server.token = "the-new-token"
    await server.start()
    # The old session was signed with the old token: the stream's 401 means sign in.
    await cdp.until(SIGNIN, "the sign-in form after the token changed")
    await cdp.js("document.getElementById('token').value = 'dash-test-token';"
                 "document.querySelector('#signin-form button').click()")
    await cdp.until("document.getElementById('signin-msg').textContent === '令牌不对'",
                    "the old token to be refused")
    await cdp.js("document.getElementById('token').value = 'the-new-token';"
                 "document.querySelector('#signin-form button').click()")
    await cdp.until(LOADED + " && " + LIVE, "the page with the new token")


def _queue(now: float) -> list[Post]:
    """700 open mentions: old breached complaints and praise, a stream of new ones, a
    P1 (food poisoning, breached an hour ago), and the posts that open a P1 incident."""
    posts = []
    for i in range(690):
        age = 3 * 3600 - i * 15  # from three hours old to about ten minutes old
        text = (f"{BRAND}的书包质量真不错，推荐" if i % 3 == 0
                else f"{BRAND}快递太慢了，等了好几天了，差评" if i % 3 == 1
                else f"{BRAND}客服回复太慢了")
        posts.append(post(str(100_000 + i), text, now - age, followers=50 + i))
    for i in range(7):  # still inside their five minutes; 6000 the newest
        posts.append(post(str(6000 - i), f"{BRAND}刚下的单怎么显示已取消？#{i}",
                          now - 10 - 30 * i))
    posts.append(post("5555", f"{BRAND}的外卖吃了以后食物中毒，全家都进医院了", now - 3600,
                      followers=400_000))
    for i in range(2):
        posts.append(post(str(5600 + i), f"{BRAND}食物中毒，孩子呕吐送医院了#{i}",
                          now - 600 - i * 60, followers=300))
    return posts


async def test_700_open_mentions_newest_visible_p1_on_top(env: Env) -> None:
    cdp, daemon = env.cdp, env.daemon
    posts = _queue(daemon.clock.now())
    for start in range(0, len(posts), 100):
        await daemon.ingest(Batch("test", posts[start:start + 100]))
    open_n = daemon.store.db.execute(
        "SELECT count(*) FROM mentions WHERE needs_reply = 1 AND replied_at IS NULL"
    ).fetchone()[0]
    assert open_n == 700
    # The API has no cap either: pages through all of them, in the queue's order.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        seen, offset = [], 0
        while offset is not None:
            async with http.get(env.base + "/api/mentions",
                                params={"limit": 300, "offset": offset}) as r:
                page = await r.json()
            seen += page["mentions"]
            offset = page["next_offset"]
        assert len(seen) == len({m["key"] for m in seen}) == 700
        assert page["counts"]["open"] == 700
        # P1 first (the food poisoning posts), then those still in their five minutes,
        # least time left first, then the breached ones.
        assert {m["post_id"] for m in seen[:3]} == {"5555", "5600", "5601"}
        assert all(m["severity"] == "P1" for m in seen[:3])
        assert [m["post_id"] for m in seen[3:10]] == [str(6000 - i) for i in range(6, -1, -1)]
        assert all(m["deadline"] < page["now"] for m in seen[10:])
        async with http.get(env.base + "/api/incidents") as r:
            incidents = (await r.json())["incidents"]
        assert any(i["open"] and i["severity"] == "P1" for i in incidents), incidents

    await sign_in(env)
    await cdp.until("document.querySelectorAll('#mentions .mention').length === 50",
                    "the first page of the queue")
    order = await cdp.js("[...document.querySelectorAll('#mentions .mention')]"
                         ".map(c => c.dataset.postId)")
    assert set(order[:3]) == {"5555", "5600", "5601"}, order  # P1 on top, though breached
    assert order[3:10] == [m["post_id"] for m in seen[3:10]], order  # then the newest
    assert await cdp.js("document.querySelector('#mentions .mention .sev-P1') !== null")
    assert await cdp.js("document.getElementById('mcount').textContent") == "(700)"
    tabs = await cdp.js("[...document.querySelectorAll('#tabs button')]"
                        ".map(b => b.textContent)")
    assert tabs[0] == "全部 700", tabs
    numbers = {t.split()[0]: int(t.split()[1]) for t in tabs}
    assert numbers["已超时"] + numbers["将超时"] + numbers["时限内"] == 700, numbers
    assert "还有 650 条" in await cdp.js("document.getElementById('more').textContent")
    assert await cdp.js("document.querySelectorAll('#incidents .incident.s-bad').length") >= 1

    # Nothing hidden: "more" pages through the rest.
    for _ in range(13):
        await cdp.js("document.getElementById('more').click()")
    assert await cdp.js("document.querySelectorAll('#mentions .mention').length") == 700
    assert await cdp.js("document.getElementById('more').hidden")
    # A filter by state shows only that state, with its count.
    await cdp.js("document.querySelector('#tabs [data-filter=in_time]').click()")
    shown = await cdp.js("document.querySelectorAll('#mentions .mention').length")
    assert 0 < shown == numbers["时限内"] + (await cdp.js(
        "document.querySelectorAll('#mentions .mention.s-warn').length")), shown
    await cdp.js("document.querySelector('#tabs [data-filter=all]').click()")

    # Idle: between changes the page does almost nothing (countdowns on screen only).
    await asyncio.sleep(0.5)
    busy0, t0 = await cdp.busy_seconds(), time.monotonic()
    await asyncio.sleep(4)  # wall time is what is measured here
    idle = (await cdp.busy_seconds() - busy0) / (time.monotonic() - t0)
    print(f"\nidle main thread with 700 open mentions: {idle:.1%} "
          f"(loadavg {os.getloadavg()[0]:.2f})")
    assert idle < 0.05, idle

    await cdp.js("window.scrollTo(0, 0)")
    await cdp.screenshot("dashboard-700-desktop.png")
    await cdp.size(390, 844, mobile=True)
    await cdp.until("document.body.scrollWidth <= 390", "the page to fit a phone")
    # On a phone the incidents come first, above the queue.
    assert await cdp.js("document.getElementById('incsec').getBoundingClientRect().top"
                        " < document.getElementById('mensec').getBoundingClientRect().top")
    await cdp.js("window.scrollTo(0, 0)")
    await cdp.screenshot("dashboard-700-phone.png")


async def test_an_open_choice_survives_a_burst_and_its_card_is_patched(env: Env) -> None:
    cdp, daemon = env.cdp, env.daemon
    now = daemon.clock.now()
    await daemon.ingest(Batch("test", [post(str(8000 + i), f"{BRAND}发货太慢了#{i}",
                                            now - 60 * i) for i in range(20)]))
    await sign_in(env)
    target = card("8005")
    await cdp.until(f"!!{target}", "the card")
    await cdp.js(f"{target}.__same = 1; {target}.querySelector('button.resolve').click()")
    assert await cdp.js(f"!!{target}.querySelector('.resolve-public')")
    await cdp.js("window.__nodes = [...document.querySelectorAll('.mention')]")

    # A burst: 300 posts in 30 batches, most more urgent than our card (it sinks), and
    # someone else acks our card meanwhile (its card is patched, the choice stays open).
    async with aiohttp.ClientSession() as http:
        for b in range(30):
            t = daemon.clock.now()
            await daemon.ingest(Batch("test", [
                post(str(20_000 + b * 10 + i), f"{BRAND}又出问题了#{b}-{i}", t - 5)
                for i in range(10)]))
            if b == 10:
                async with http.post(env.base + "/api/mentions/8005/ack",
                                     headers={"Authorization": f"Bearer {TOKEN}"},
                                     json={"by": "老张"}) as r:
                    assert r.status == 200
            await asyncio.sleep(0.05)  # wall time between batches: several patches
    await cdp.until(f"({target}.querySelector('.acked') || {{}}).textContent === '已确认 · 老张'",
                    "the card to be patched with the ack")
    await cdp.until("document.querySelectorAll('.mention').length >= 50", "the burst")
    assert await cdp.js(f"{target}.__same") == 1  # the same node, not a redrawn one
    assert await cdp.js(f"!!{target}.querySelector('.resolve-public')"
                        f" && !{target}.querySelector('.resolve-public').disabled")
    # Cards already on the page were patched in place, not redrawn.
    assert await cdp.js("window.__nodes.filter(n => n.isConnected).every("
                        "n => document.querySelector("
                        "`[data-post-id=\"${n.dataset.postId}\"]`) === n)")
    await cdp.js(f"{target}.scrollIntoView({{block: 'center'}})")
    await cdp.screenshot("dashboard-choice-open.png")
    # The choice still works: resolve publicly; the mention leaves the queue.
    await cdp.js(f"{target}.querySelector('.resolve-public').click()")
    await cdp.until(f"!{target}", "the resolved card to leave")
    row = daemon.store.db.execute("SELECT replied_at FROM mentions WHERE post_id = '8005'")
    assert row.fetchone()[0] is not None


async def test_per_person_tokens_sign_acks_and_the_cookie_needs_json(tmp_path: Path) -> None:
    """With ``[[http.users]]``, whoever is signed in signs the ack, whatever ``by`` says;
    the shared token still lets a script say who acts."""
    server = Server(tmp_path, users=(HttpUserConfig("小王", "xw-token-1"),
                                     HttpUserConfig("老张", "lz-token-2")))
    daemon = await server.start()
    try:
        now = daemon.clock.now()
        await daemon.ingest(Batch("test", [post(str(3000 + i), f"{BRAND}发货慢#{i}", now)
                                           for i in range(3)]))
        # unsafe: the jar keeps cookies of an IP address (127.0.0.1), as a browser does
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(server.base + "/api/mentions/3000/ack", json={"by": "老张"},
                                 headers={"Authorization": "Bearer xw-token-1"}) as r:
                assert r.status == 200 and (await r.json())["action"]["by"] == "小王"
            async with http.post(server.base + "/api/mentions/3001/ack", json={"by": "脚本"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert (await r.json())["action"]["by"] == "脚本"
            # Signed in by the link with a personal token: the session names them.
            async with http.get(server.base + "/dashboard?token=lz-token-2",
                                allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/dashboard"
                assert "HttpOnly" in r.headers["Set-Cookie"]
                assert "SameSite=Strict" in r.headers["Set-Cookie"]
            async with http.get(server.base + "/api/session") as r:
                assert await r.json() == {"user": "老张", "via": "cookie"}
            async with http.post(server.base + "/api/mentions/3002/ack",
                                 json={"by": "小王"}) as r:
                assert (await r.json())["action"]["by"] == "老张"
            # With the cookie, a state change must be JSON: a form from another site
            # (were the cookie sent at all) is refused.
            async with http.post(server.base + "/api/mentions/3002/resolve",
                                 data={"public": "true"}) as r:
                assert r.status == 403
            async with http.post(server.base + "/dashboard/signout") as r:
                assert r.status == 200
            async with http.get(server.base + "/api/session") as r:
                assert r.status == 401
        acked = dict(daemon.store.db.execute(
            "SELECT post_id, acked_by FROM mentions ORDER BY post_id").fetchall())
        assert acked == {"3000": "小王", "3001": "脚本", "3002": "老张"}
    finally:
        await server.stop()


async def test_tls_from_a_configured_cert_and_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert await made.wait() == 0
    server = Server(tmp_path, tls_cert=str(cert), tls_key=str(key))
    await server.start()
    try:
        assert server.base.startswith("https://")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with http.get(f"{server.base}/dashboard?token={TOKEN}",
                                allow_redirects=False) as r:
                assert r.status == 303
                assert "Secure" in r.headers["Set-Cookie"]  # HTTPS: the cookie says so
            async with http.get(server.base + "/api/mentions",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
        with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served there
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{server.port}/healthz") as r:
                await r.read()
    finally:
        await server.stop()
