"""Loopback stand-ins for the chat providers and a generic webhook receiver.

Each fake checks the payload shape, verifies the signature the way the provider does
(from the bytes or decoded query it received, with its own copy of the secret), and
answers the way the provider answers, including its error codes. Tests script failures
with :meth:`Fake.fail_next`: an HTTP status, a provider error code, or a hang (a slow
provider, released at teardown).

Routes (one aiohttp app serves them all):

- ``POST /dingtalk/robot/send?access_token=…[&timestamp=…&sign=…]``
- ``POST /wecom/cgi-bin/webhook/send?key=…``
- ``POST /feishu/open-apis/bot/v2/hook/{hook}``
- ``POST /slack/services/{path}`` (incoming webhook)
- ``POST /slack/api/chat.postMessage`` (bot: ``Authorization: Bearer <token>``; answers
  ``{"ok": true, "ts": …}``; a ``thread_ts`` must name a top-level message it posted)
- ``POST /webhook/{path}``
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

DINGTALK_TOKEN = "dt-token-0123"
DINGTALK_SECRET = "SECdingtalk+/=secret"  # + / = make URL-encoding mistakes visible
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
FEISHU_HOOK = "f0e1d2c3-hook"
FEISHU_SECRET = "feishu-secret-xyz"
SLACK_PATH = "T000/B000/XXXX"
SLACK_BOT_TOKEN = "xoxb-0000-test-token"
SLACK_CHANNEL = "C0CRISIS01"
WEBHOOK_SECRET = "webhook-hmac-secret"
MAX_SKEW_S = 3600  # both DingTalk and Feishu refuse timestamps more than an hour off
DINGTALK_MAX_TEXT_BYTES = 20_000  # a robot message's markdown text
FEISHU_MAX_REQUEST_BYTES = 20 * 1024  # a custom bot's request body
SLACK_MAX_BLOCKS = 50  # per message
SLACK_MAX_SECTION_CHARS = 3000  # a section's text
SLACK_MAX_HEADER_CHARS = 150
SLACK_MAX_TEXT_CHARS = 40_000  # the top-level text (Slack truncates, we refuse)


def slack_blocks_ok(body: dict[str, Any]) -> bool:
    """Slack's block limits: 50 blocks, header 150 characters, section text 3000."""
    blocks = body.get("blocks", [])
    if len(blocks) > SLACK_MAX_BLOCKS or len(body.get("text", "")) > SLACK_MAX_TEXT_CHARS:
        return False
    for block in blocks:
        if block.get("type") == "header" and \
                len(block["text"]["text"]) > SLACK_MAX_HEADER_CHARS:
            return False
        if block.get("type") == "section" and \
                len((block.get("text") or {}).get("text", "")) > SLACK_MAX_SECTION_CHARS:
            return False
    return True


@dataclass
class Fault:
    """One scripted misbehaviour, used for the next request."""

    status: int = 200
    body: Any = None  # JSON-able, or str for a plain body
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the fake is released)


@dataclass
class Received:
    """One request the fake accepted as well-formed and correctly signed."""

    body: Any
    raw: bytes
    headers: dict[str, str]
    query: dict[str, str]
    ts: str = ""
    """Slack bot: the ``ts`` the fake gave the message."""


class Fake:
    """State of one provider: what it received, what it will do next."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[Received] = []
        self.attempts = 0
        self.faults: list[Fault] = []
        self.release = asyncio.Event()

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        """Misbehave for the next ``times`` requests, then behave."""
        self.faults.extend([fault] * times)

    async def fault(self) -> web.StreamResponse | None:
        """The scripted answer for this request, if any."""
        self.attempts += 1
        if not self.faults:
            return None
        fault = self.faults.pop(0)
        if fault.hang:
            await self.release.wait()
        if isinstance(fault.body, str | None):
            return web.Response(status=fault.status, text=fault.body or "",
                                headers=fault.headers)
        return web.json_response(fault.body, status=fault.status, headers=fault.headers)


class Providers:
    """All fakes behind one loopback server; ``url_*`` give the configured URLs."""

    def __init__(self) -> None:
        self.server: TestServer | None = None
        self.dingtalk = Fake("dingtalk")
        self.wecom = Fake("wecom")
        self.feishu = Fake("feishu")
        self.slack = Fake("slack")
        self.slack_bot = Fake("slack_bot")
        self.webhook = Fake("webhook")
        self.slack_deleted: set[str] = set()
        """``ts`` of bot messages "deleted" by a test (a thread_ts naming one is refused)."""

    def url(self, path: str) -> str:
        assert self.server is not None, "not started"
        return str(self.server.make_url(path))

    @property
    def dingtalk_url(self) -> str:
        return self.url(f"/dingtalk/robot/send?access_token={DINGTALK_TOKEN}")

    @property
    def wecom_url(self) -> str:
        return self.url(f"/wecom/cgi-bin/webhook/send?key={WECOM_KEY}")

    @property
    def feishu_url(self) -> str:
        return self.url(f"/feishu/open-apis/bot/v2/hook/{FEISHU_HOOK}")

    @property
    def slack_url(self) -> str:
        return self.url(f"/slack/services/{SLACK_PATH}")

    @property
    def slack_api_url(self) -> str:
        return self.url("/slack/api")

    @property
    def webhook_url(self) -> str:
        return self.url("/webhook/alerts")

    def fakes(self) -> list[Fake]:
        return [self.dingtalk, self.wecom, self.feishu, self.slack, self.slack_bot,
                self.webhook]


async def _json(request: web.Request) -> tuple[bytes, Any]:
    raw = await request.read()
    try:
        return raw, json.loads(raw)
    except ValueError:
        return raw, None


def _fresh(timestamp: float) -> bool:
    return abs(time.time() - timestamp) <= MAX_SKEW_S


def build_app(p: Providers) -> web.Application:
    """The aiohttp app serving every fake."""

    async def dingtalk(request: web.Request) -> web.StreamResponse:
        if (r := await p.dingtalk.fault()) is not None:
            return r
        q = request.query
        if q.get("access_token") != DINGTALK_TOKEN:
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
        # Verify as DingTalk does: recompute from the *decoded* query values.
        ts, sign = q.get("timestamp", ""), q.get("sign", "")
        mac = hmac.new(DINGTALK_SECRET.encode(), f"{ts}\n{DINGTALK_SECRET}".encode(),
                       hashlib.sha256)
        expected = base64.b64encode(mac.digest()).decode()
        if not ts.isdigit() or not _fresh(int(ts) / 1000) or \
                not hmac.compare_digest(sign, expected):
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        raw, body = await _json(request)
        md = body.get("markdown") if isinstance(body, dict) else None
        if body.get("msgtype") != "markdown" or not isinstance(md, dict) or \
                not md.get("title") or not md.get("text"):
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 json"})
        if len(md["text"].encode()) > DINGTALK_MAX_TEXT_BYTES:
            return web.json_response({"errcode": 460101, "errmsg": "message too long"})
        p.dingtalk.received.append(Received(body, raw, dict(request.headers), dict(q)))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def wecom(request: web.Request) -> web.StreamResponse:
        if (r := await p.wecom.fault()) is not None:
            return r
        if request.query.get("key") != WECOM_KEY:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        raw, body = await _json(request)
        md = body.get("markdown") if isinstance(body, dict) else None
        if body.get("msgtype") != "markdown" or not isinstance(md, dict):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        content = md.get("content") or ""
        if not content:
            return web.json_response({"errcode": 44004, "errmsg": "empty content"})
        if len(content.encode()) > 4096:
            return web.json_response({"errcode": 40058, "errmsg": "markdown.content exceed max "
                                      "length 4096"})
        p.wecom.received.append(Received(body, raw, dict(request.headers), dict(request.query)))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def feishu(request: web.Request) -> web.StreamResponse:
        if (r := await p.feishu.fault()) is not None:
            return r
        if request.match_info["hook"] != FEISHU_HOOK:
            return web.json_response({"code": 19001, "msg": "param invalid: incoming webhook "
                                      "access token invalid", "data": {}})
        raw, body = await _json(request)
        if not isinstance(body, dict):
            return web.json_response({"code": 9499, "msg": "Bad Request", "data": {}})
        if len(raw) > FEISHU_MAX_REQUEST_BYTES:
            return web.json_response({"code": 9499, "msg": "request body exceeds 20KB",
                                      "data": {}})
        ts, sign = body.get("timestamp"), body.get("sign")
        if not isinstance(ts, str) or not ts.isdigit() or not isinstance(sign, str):
            return web.json_response({"code": 19021, "msg": "sign match fail or timestamp is "
                                      "not within one hour from current time", "data": {}})
        mac = hmac.new(f"{ts}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256)
        if not _fresh(int(ts)) or \
                not hmac.compare_digest(sign, base64.b64encode(mac.digest()).decode()):
            return web.json_response({"code": 19021, "msg": "sign match fail or timestamp is "
                                      "not within one hour from current time", "data": {}})
        kind = body.get("msg_type")
        ok = (kind == "text" and isinstance(body.get("content", {}).get("text"), str)) or \
             (kind == "interactive" and isinstance(body.get("card"), dict)
              and body["card"].get("elements"))
        if not ok:
            return web.json_response({"code": 9499, "msg": "Bad Request", "data": {}})
        p.feishu.received.append(Received(body, raw, dict(request.headers), {}))
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def slack(request: web.Request) -> web.StreamResponse:
        if (r := await p.slack.fault()) is not None:
            return r
        if request.match_info["path"] != SLACK_PATH:
            return web.Response(status=404, text="no_service")
        raw, body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or \
                not isinstance(body.get("blocks", []), list):
            return web.Response(status=400, text="invalid_payload")
        if not slack_blocks_ok(body):
            return web.Response(status=400, text="invalid_blocks")
        p.slack.received.append(Received(body, raw, dict(request.headers), {}))
        return web.Response(text="ok")

    async def slack_post_message(request: web.Request) -> web.StreamResponse:
        # chat.postMessage as the Web API answers it: HTTP 200 with ok true/false.
        if (r := await p.slack_bot.fault()) is not None:
            return r
        auth = request.headers.get("Authorization", "")
        if not auth:
            return web.json_response({"ok": False, "error": "not_authed"})
        if auth != f"Bearer {SLACK_BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return web.json_response({"ok": False, "error": "invalid_post_type"})
        raw, body = await _json(request)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_json"})
        if body.get("channel") != SLACK_CHANNEL:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not isinstance(body.get("text"), str) or not body["text"]:
            return web.json_response({"ok": False, "error": "no_text"})
        if not slack_blocks_ok(body):
            return web.json_response({"ok": False, "error": "invalid_blocks"})
        thread_ts = body.get("thread_ts")
        if thread_ts is not None:
            # Slack: "avoid using a reply's ts value; use its parent instead" - the fake
            # insists, so a test sees a reply threaded under a reply. A deleted or unknown
            # parent is answered with thread_not_found (an assumption: Slack's reference
            # does not say what chat.postMessage answers then).
            parents = {m.ts for m in p.slack_bot.received if "thread_ts" not in m.body}
            if thread_ts not in parents - p.slack_deleted:
                return web.json_response({"ok": False, "error": "thread_not_found"})
        elif "reply_broadcast" in body:
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        ts = f"{int(time.time())}.{len(p.slack_bot.received) + 1:06d}"
        p.slack_bot.received.append(Received(body, raw, dict(request.headers), {}, ts))
        return web.json_response({"ok": True, "channel": SLACK_CHANNEL, "ts": ts,
                                  "message": {"type": "message", "text": body["text"],
                                              "ts": ts}})

    async def webhook(request: web.Request) -> web.StreamResponse:
        if (r := await p.webhook.fault()) is not None:
            return r
        raw = await request.read()
        # A receiver verifies over the bytes as received, before parsing.
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        got = request.headers.get("X-Crisismon-Signature", "")
        if not hmac.compare_digest(got, expected):
            return web.json_response({"error": "bad signature"}, status=401)
        if not request.headers.get("Idempotency-Key"):
            return web.json_response({"error": "Idempotency-Key missing"}, status=400)
        p.webhook.received.append(Received(json.loads(raw), raw, dict(request.headers), {}))
        return web.json_response({"accepted": True}, status=202)

    app = web.Application()
    app.router.add_post("/dingtalk/robot/send", dingtalk)
    app.router.add_post("/wecom/cgi-bin/webhook/send", wecom)
    app.router.add_post("/feishu/open-apis/bot/v2/hook/{hook}", feishu)
    app.router.add_post("/slack/services/{path:.+}", slack)
    app.router.add_post("/slack/api/chat.postMessage", slack_post_message)
    app.router.add_post("/webhook/{path:.+}", webhook)
    return app


@asynccontextmanager
async def running_providers() -> AsyncIterator[Providers]:
    """All fakes served on 127.0.0.1 (a free port) for the block."""
    providers = Providers()
    server = TestServer(build_app(providers), host="127.0.0.1")
    await server.start_server()
    providers.server = server
    try:
        yield providers
    finally:
        for fake in providers.fakes():
            fake.release.set()  # let hung handlers finish so the server can close
        await server.close()
