"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

A real ``Daemon`` serves on a free loopback port with a scaled clock (1x, so the page's
countdown runs at wall speed); posts are ingested the way sources hand them over, and
the page must show them live over server-sent events, count down, send an ack, and
show a ``<script>`` post as text without running it. Screenshots go to
``test-artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

import monitor.api
import monitor.dashboard  # noqa: F401  (registers the dashboard's routes)
from monitor.app import build_pipeline
from monitor.clock import ScaledClock
from monitor.config import BrandConfig, Config, HttpConfig
from monitor.daemon import Daemon
from monitor.model import Author, Post, PostKind
from monitor.sources.base import Batch
from monitor.store import Store

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "dash-test-token"
BRAND = "快书包"
T0 = 1_779_242_400.0  # 2026-05-20 10:00 +08:00
WAIT = 15.0



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(pid: str, text: str, at: float, followers: int = 120) -> Post:
    return Post(id=pid, kind=PostKind.STATUS, created_at=at, text=text,
                author=Author(id="42", screen_name="顾客小李", followers_count=followers))


class Cdp:
    """The few DevTools-protocol calls the tests need, over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
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

    async def until(self, expression: str, what: str) -> Any:
        """Poll the page until ``expression`` is truthy (the page's own timers drive it)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    async def screenshot(self, name: str) -> Path:
        import base64

        data = await self.send("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@dataclass
class Env:
    daemon: Daemon
    base: str
    cdp: Cdp


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
         f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank",
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
                await cdp.send("Page.enable")
                await cdp.send("Runtime.enable")
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


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    port = free_port()
    config = replace(Config(brands=(BrandConfig(name=BRAND, keywords=(BRAND,),
                                                official_accounts=("1650000001",)),)),
                     http=HttpConfig(listen=f"127.0.0.1:{port}", token=TOKEN))
    store = Store(tmp_path / "state.db")
    daemon = Daemon(config, store, build_pipeline(config, store), ScaledClock(T0, 1.0), [])
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run([], stop), name="daemon")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/api/mentions"):
                    break
            await asyncio.sleep(0.05)
    try:
        async with chromium() as cdp:
            yield Env(daemon, base, cdp)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        store.close()


async def test_token_is_required(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/dashboard", "/api/mentions?open=1", "/api/incidents", "/api/events"):
            async with http.get(env.base + path) as r:
                assert r.status == 401, path
            async with http.get(env.base + path,
                                headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401, path
        async with http.get(env.base + "/api/mentions",
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
            assert (await r.json())["mentions"] == []


async def test_live_mention_countdown_ack_and_script_as_text(env: Env) -> None:
    cdp, daemon = env.cdp, env.daemon
    now = daemon.clock.now()
    await daemon.ingest(Batch("test", [post("9001", f"{BRAND}送货太慢了，客服也不回[怒]", now - 30,
                                            followers=25_000)]))
    await cdp.send("Page.navigate", url=f"{env.base}/dashboard?token={TOKEN}")
    await cdp.until("document.body && document.body.dataset.loaded === '1'", "the page to load")
    assert await cdp.js("location.search") == ""  # the token left the address bar
    assert await cdp.js("document.querySelectorAll('#mentions .mention').length") == 1
    await cdp.until("document.getElementById('live').textContent === '实时'", "the SSE stream")

    # A new mention appears without a reload, pushed over server-sent events.
    await cdp.js("window.__marker = 'same page'")
    xss = f"{BRAND}太差了<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
    await daemon.ingest(Batch("test", [post("9002", xss, daemon.clock.now())]))
    await cdp.until("!!document.querySelector('[data-post-id=\"9002\"]')", "the live mention")
    assert await cdp.js("window.__marker") == "same page"

    # The post's markup is shown as text and never runs.
    shown = await cdp.js("document.querySelector('[data-post-id=\"9002\"] .text').textContent")
    assert "<script>window.__pwned=1</script>" in shown
    assert await cdp.js("typeof window.__pwned") == "undefined"
    assert await cdp.js("document.querySelectorAll('#mentions script, #mentions img')"
                        ".length") == 0

    # The countdown runs (the daemon's clock drives it; 1x here, so wall seconds).
    sel = "document.querySelector('[data-post-id=\"9001\"] .countdown').textContent"
    first = await cdp.js(sel)
    assert first.startswith("剩 4:")
    await cdp.until(f"{sel} !== {json.dumps(first)}", "the countdown to move")
    await cdp.screenshot("dashboard-desktop.png")

    # Ack: the button sends it, the daemon records it, the page shows who.
    await cdp.js("document.querySelector('#who').value = '小王';"
                 "document.querySelector('[data-post-id=\"9001\"] button.ack').click()")
    await cdp.until("(document.querySelector('[data-post-id=\"9001\"] .acked') || {})"
                    ".textContent === '已确认 · 小王'", "the ack to show")
    row = daemon.store.db.execute("SELECT acked_by FROM mentions WHERE post_id = '9001'")
    assert row.fetchone()[0] == "小王"

    await cdp.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                   deviceScaleFactor=2, mobile=True)
    await cdp.until("document.body.scrollWidth <= 390", "the page to fit a phone")
    await cdp.screenshot("dashboard-phone.png")
