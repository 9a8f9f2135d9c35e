"""Digests on every channel: rendered within each provider's limits (checked here and by
the loopback fakes, which refuse what the provider refuses), delivered through the
outbox once, retried after a failure, and never held by the noise stages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts import digest as dg
from alerts.channels.dingtalk import DingTalkChannel
from alerts.channels.email import EmailChannel
from alerts.channels.feishu import FeishuChannel
from alerts.channels.slack import SlackChannel
from alerts.channels.terminal import TerminalChannel
from alerts.channels.wecom import WeComChannel
from alerts.digest import Digest, digest_alert, plain_text
from alerts.noise import PagingConfig, SilenceConfig, Stages
from alerts.outbox import Outbox
from monitor.clock import SimClock
from monitor.secrets import Secret
from monitor.store import Store
from monitor.textsafe import printable
from tests.fakes.providers import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    SLACK_BOT_TOKEN,
    SLACK_CHANNEL,
    Fault,
    Providers,
    running_providers,
)


def brand(i: int, posts: int) -> dict[str, Any]:
    """One brand's figures, its texts full of what markup would mangle."""
    return {
        "brand": f"品牌{i:02d}", "mentions": 1200 + i, "negative": 300 + i,
        "negative_share": 0.25, "baseline": {"mentions": 900.5, "negative_share": 0.1},
        "needing_reply": 1100, "replied_in_time": 990, "replied_in_time_pct": 90.0,
        "pending": 3, "median_reply_seconds": 95.0, "p90_reply_seconds": 310.0,
        "breaches": {"L0": 40, "L1": 12, "L2": 3},
        "incidents": [{"id": f"inc-{i}{k}", "trigger": "burst", "severity": "P2",
                       "opened_at": "2026-05-20T14:00:00+08:00", "detection_seconds": 240.0,
                       "statement_seconds": None if k else 3300.0, "closed_at": None,
                       "detail": "负面提及突增"} for k in range(2)],
        "top_posts": [{"post_id": f"50{i:02d}{k:04d}", "author": f"<b>作者{k}</b>*",
                       "followers": 520000 - k, "created_at": "2026-05-20T10:00:00+08:00",
                       "negative": k % 2 == 0, "replied": k % 3 == 0,
                       "text": "[链接](http://x) **粗** <font color=red>红</font> # 标题 " * 4}
                      for k in range(posts)],
    }


def make_digest(brands: int, posts: int) -> Digest:
    return Digest(id="a-0123456789abcdef", name="daily", at="2026-05-21T09:00:00+08:00",
                  period_start="2026-05-20T09:00:00+08:00",
                  period_end="2026-05-21T09:00:00+08:00", reply_within=300.0,
                  brands=[brand(i, posts) for i in range(brands)])


BIG = make_digest(30, 20)  # far more than any chat robot takes
SMALL = make_digest(1, 5)


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with running_providers() as p:
        yield p


def brands_accounted_for(text: str) -> int:
    """How many of BIG's brands ``text`` shows; the rest must be said to be left out."""
    shown = sum(f"品牌{i:02d}" in text for i in range(len(BIG.brands)))
    assert shown >= 1
    if shown < len(BIG.brands):
        assert f"另有 {len(BIG.brands) - shown} 个品牌未列出" in text
    return shown


def all_posts_shown(text: str, d: Digest) -> bool:
    return all(f"{p['followers'] / 10000:.1f}万粉" in text for p in d.brands[0]["top_posts"])


async def test_dingtalk_digest_fits_and_says_what_it_left_out(providers: Providers) -> None:
    channel = DingTalkChannel("dt", Secret(providers.dingtalk_url),
                              secret=Secret(DINGTALK_SECRET))
    for d in (SMALL, BIG):
        await channel.send(digest_alert(d))
    await channel.aclose()
    small, big = (r.body["markdown"]["text"] for r in providers.dingtalk.received)
    assert len(big.encode()) <= dg.DINGTALK_MAX_BYTES < 20_000
    assert "舆情摘要 daily：05-20 09:00 – 05-21 09:00" in small
    assert "**提及**：1200 条（基线 900.5 条 ↑）" in small and all_posts_shown(small, SMALL)
    assert "**5 分钟内回复**：990/1097（90.0%），另 3 条未到期" in small
    # Too big whole: every brand's figures stay, the top posts go first.
    assert all(f"### 品牌{i:02d}" in big for i in range(30))
    assert big.count("万粉") < 30 * 20
    # A customer's words are not markup: no link, no font tag, no bold from a post.
    assert "<font" not in small and "](http" not in small and "<b>" not in small


async def test_wecom_digest_fits_4096_bytes(providers: Providers) -> None:
    channel = WeComChannel("wc", Secret(providers.wecom_url))
    for d in (SMALL, BIG):
        await channel.send(digest_alert(d))
    await channel.aclose()
    small, big = (r.body["markdown"]["content"] for r in providers.wecom.received)
    assert len(small.encode()) <= 4096 and len(big.encode()) <= 4096
    assert "**L0 提醒**" not in small and "L1 超时 12" in small
    assert brands_accounted_for(big) < 30  # 4096 bytes cannot hold 30 brands


@pytest.mark.parametrize("msg_type", ["interactive", "text"])
async def test_feishu_digest_fits_the_request_limit(providers: Providers, msg_type: str) -> None:
    channel = FeishuChannel("fs", Secret(providers.feishu_url), secret=Secret(FEISHU_SECRET),
                            msg_type=msg_type)  # type: ignore[arg-type]
    for d in (SMALL, BIG):
        await channel.send(digest_alert(d))
    await channel.aclose()
    small, big = providers.feishu.received
    assert len(big.raw) <= 20 * 1024 and len(small.raw) <= 20 * 1024
    if msg_type == "interactive":
        assert small.body["card"]["header"]["title"]["content"].startswith("舆情摘要 daily")
        content = small.body["card"]["elements"][0]["text"]["content"]
        assert "**负面**：300 条，占 25.0%（基线 10.0% ↑）" in content
        brands_accounted_for(json.dumps(big.body, ensure_ascii=False))
    else:
        assert "【品牌00】" in small.body["content"]["text"]
        assert "品牌00" in big.body["content"]["text"]  # cut to the byte limit


@pytest.mark.parametrize("bot", [False, True])
async def test_slack_digest_blocks_within_limits(providers: Providers, bot: bool) -> None:
    channel = SlackChannel("sl", token=Secret(SLACK_BOT_TOKEN), channel=SLACK_CHANNEL,
                           api_url=providers.slack_api_url) if bot else \
        SlackChannel("sl", Secret(providers.slack_url))
    for d in (SMALL, BIG):
        await channel.send(digest_alert(d))
    await channel.aclose()
    small, big = (providers.slack_bot if bot else providers.slack).received
    for got in (small, big):
        blocks = got.body["blocks"]
        assert len(blocks) <= 50 and len(got.body["text"]) <= 3000
        assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
        assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    text = "\n".join(b["text"]["text"] for b in small.body["blocks"] if b["type"] == "section")
    assert "*提及*：1200 条" in text and all_posts_shown(text, SMALL)
    assert "&lt;b&gt;" in text  # escaped, not a link or a tag
    brands_accounted_for(json.dumps(big.body["blocks"], ensure_ascii=False))


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


async def test_email_digest_is_html_with_its_plots_inline() -> None:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box, hostname="mx.test"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    plots = {"mentions_per_hour": b"\x89PNG fake-1", "reply_times": b"\x89PNG fake-2"}
    channel = EmailChannel("mail", sender="crisismon <alerts@example.com>",
                           to=("pr@example.com",), host="127.0.0.1", port=port, tls="none")
    try:
        await channel.send(digest_alert(BIG, plots))
    finally:
        server.close()
        await server.wait_closed()
    (env,) = box.envelopes
    raw = env.original_content or b""
    assert len(raw) < dg.EMAIL_MAX_BYTES
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "舆情摘要 daily：05-20 09:00 – 05-21 09:00"
    assert msg["Message-ID"] == "<a-0123456789abcdef@example.com>"
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    # The mail has everything: all 30 brands, all 20 posts each.
    assert all(f"【品牌{i:02d}】" in text for i in range(30)) and "热帖 20" in text
    assert page.count("<h2>品牌") == 30 and "&lt;b&gt;作者0&lt;/b&gt;" in page
    images = {part["Content-ID"]: part.get_content() for part in msg.walk()
              if part.get_content_type() == "image/png"}
    assert set(images.values()) == set(plots.values())
    for cid in images:
        assert f"cid:{cid[1:-1]}" in page


async def test_outbox_retries_a_digest_until_delivered_and_silences_do_not_hold_it(
        providers: Providers, tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    clock = SimClock(1779325200.0)
    # A silence for everything (and a heavy hand of grouping): a digest is no page.
    stages = Stages.from_config(PagingConfig(silences=(SilenceConfig(comment="all"),)), UTC)
    channel = DingTalkChannel("dt", Secret(providers.dingtalk_url),
                              secret=Secret(DINGTALK_SECRET))
    outbox = Outbox(store, {"dt": channel}, clock, seed=1, stages=stages)
    alert = digest_alert(SMALL)
    assert [a.id for a in store.add_alerts([alert], ["dt"])] == [alert.id]
    assert store.add_alerts([alert], ["dt"]) == []  # one digest per name and period
    providers.dingtalk.fail_next(Fault(status=502))
    try:
        assert await outbox.drain("dt") == 0
        retry = outbox.next_try("dt")
        assert retry is not None and retry > clock.now()
        clock.advance_to(retry)
        assert await outbox.drain("dt") == 1
        clock.advance(3600)
        assert await outbox.drain("dt") == 0  # delivered once, never again
    finally:
        await channel.aclose()
        store.close()
    (got,) = providers.dingtalk.received
    assert json.loads(json.dumps(got.body))["markdown"]["title"].startswith("舆情摘要")


async def test_terminal_prints_a_digest_as_its_text() -> None:
    """The one terminal channel (built-in, configured, replay's printer) prints a digest
    whole, one brand per block, not as a one-line page."""
    out = io.StringIO()
    await TerminalChannel("terminal", out).send(digest_alert(SMALL))
    text = out.getvalue()
    assert text == printable(plain_text(SMALL), keep_lines=True)
    assert "品牌00" in text and text.count("\n") > 3 and "\x1b" not in text
