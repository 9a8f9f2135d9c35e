"""Delivery channels against real servers on loopback: fake providers (aiohttp) that verify
signatures as the providers do, an aiosmtpd SMTP server, and a real MQTT broker."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alerts.channels.base import Channel, DeliveryError, Thread, render
from alerts.channels.dingtalk import DingTalkChannel
from alerts.channels.email import EmailChannel
from alerts.channels.feishu import FeishuChannel
from alerts.channels.mqtt import MqttChannel
from alerts.channels.options import (
    DingTalkChannelConfig,
    EmailChannelConfig,
    FeishuChannelConfig,
    MqttChannelConfig,
    SlackChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from alerts.channels.registry import ChannelConfig, build_channel
from alerts.channels.slack import SlackChannel
from alerts.channels.terminal import TerminalChannel
from alerts.channels.webhook import WebhookChannel
from alerts.channels.wecom import WeComChannel
from alerts.outbox import Outbox
from monitor.clock import SimClock
from monitor.secrets import Secret, SecretError, load_secret, resolve_secret
from monitor.settings import SettingsError, load_table
from monitor.store import Store
from rules.records import Alert, AlertType, Duration
from tests.fakes.providers import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    SLACK_BOT_TOKEN,
    SLACK_CHANNEL,
    WEBHOOK_SECRET,
    Fault,
    Providers,
    running_providers,
)
from tests.fixtures.broker import free_port, own_broker_protocol, start_broker

AT = 1777597500.0  # 2026-05-01 09:05:00 +08:00


def make_alert(type: AlertType = AlertType.REPLY_BREACH, **kw: Any) -> Alert:
    """An alert as the engine makes them; override any field."""
    fields: dict[str, Any] = dict(
        id=f"a-{uuid.uuid4().hex[:16]}", type=type, at=AT, brand="快书包", level=1,
        severity="P1", title="5分钟未回复：快递三天没到",
        text="@快书包 我的书三天了还没到，客服也不回！",
        post_id="4987654321", incident_id=None, recipients=("客服总监",))
    fields.update(kw)
    return Alert(**fields)


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with running_providers() as p:
        yield p


# --- shared rendering ---------------------------------------------------------------------

def test_render_is_readable_chinese_with_every_fact() -> None:
    alert = make_alert(incident_id="inc-1")
    title, body = render(alert)
    assert title == "[P1] 快书包 回复超时：5分钟未回复：快递三天没到"
    assert body.splitlines()[:5] == ["严重度：P1", "品牌：快书包", "类型：回复超时（reply.breach）",
                                     "级别：L1 客服总监", "到期时间：2026-05-01 09:05:00 +08:00"]
    for fact in ("帖子：4987654321", "事件：inc-1", "通知：客服总监", f"告警编号：{alert.id}"):
        assert fact in body
    assert body.endswith("\n\n" + alert.text)


# --- DingTalk -----------------------------------------------------------------------------

async def test_dingtalk_signed_markdown_is_accepted(providers: Providers,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DT_URL", providers.dingtalk_url)
    monkeypatch.setenv("DT_SECRET", DINGTALK_SECRET)
    cfg = DingTalkChannelConfig(type="dingtalk", name="pr-group", url="env:DT_URL",
                                secret="env:DT_SECRET", at_mobiles=("13800000000",))
    channel = build_channel(cfg)
    assert isinstance(channel, DingTalkChannel) and isinstance(channel, Channel)
    alert = make_alert()
    try:
        await channel.send(alert)
    finally:
        await channel.aclose()
    (got,) = providers.dingtalk.received
    assert got.body["msgtype"] == "markdown"
    assert got.body["markdown"]["title"].startswith("[P1] 快书包 回复超时")
    text = got.body["markdown"]["text"]
    assert "**品牌**：快书包" in text and alert.text in text and "@13800000000" in text
    assert got.body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


async def test_dingtalk_wrong_secret_is_a_permanent_failure_that_hides_the_secret(
        providers: Providers) -> None:
    channel = DingTalkChannel("d", Secret(providers.dingtalk_url), secret=Secret("SECwrong"))
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert not err.value.retryable and "310000" in err.value.message
    assert "SECwrong" not in repr(err.value) and not providers.dingtalk.received


async def test_dingtalk_rate_limit_code_is_retryable_then_delivers(providers: Providers) -> None:
    providers.dingtalk.fail_next(Fault(body={"errcode": 130101, "errmsg": "send too fast, "
                                             "exceed 20 times per minute"}))
    channel = DingTalkChannel("d", Secret(providers.dingtalk_url),
                              secret=Secret(DINGTALK_SECRET))
    alert = make_alert()
    with pytest.raises(DeliveryError) as err:
        await channel.send(alert)
    assert err.value.retryable and err.value.retry_after == 60.0
    await channel.send(alert)
    await channel.aclose()
    assert len(providers.dingtalk.received) == 1 and providers.dingtalk.attempts == 2


# --- WeCom --------------------------------------------------------------------------------

async def test_wecom_markdown_fits_the_4096_byte_limit(providers: Providers) -> None:
    channel = WeComChannel("w", Secret(providers.wecom_url), mention=("zhangsan",))
    await channel.send(make_alert(text="客户投诉，" * 2000))  # 30 KB of text
    await channel.aclose()
    (got,) = providers.wecom.received
    content = got.body["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.startswith("### [P1] 快书包") and content.endswith("<@zhangsan>")
    assert '<font color="warning">P1</font>' in content


@pytest.mark.parametrize(("answer", "retryable", "retry_after"), [
    ({"errcode": 93000, "errmsg": "invalid webhook url"}, False, None),
    ({"errcode": 45009, "errmsg": "api freq out of limit"}, True, 60.0),
    ({"errcode": -1, "errmsg": "system busy"}, True, None),
])
async def test_wecom_error_codes(providers: Providers, answer: dict[str, Any], retryable: bool,
                                 retry_after: float | None) -> None:
    providers.wecom.fail_next(Fault(body=answer))
    channel = WeComChannel("w", Secret(providers.wecom_url))
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert (err.value.retryable, err.value.retry_after) == (retryable, retry_after)
    assert str(answer["errcode"]) in err.value.message


# --- Feishu -------------------------------------------------------------------------------

@pytest.mark.parametrize("msg_type", ["interactive", "text"])
async def test_feishu_signed_message_is_accepted(providers: Providers, msg_type: str,
                                                 tmp_path: Path) -> None:
    secret_file = tmp_path / "feishu.secret"
    secret_file.write_text(FEISHU_SECRET + "\n")
    cfg = FeishuChannelConfig(type="feishu", name="f", url=providers.feishu_url,
                              secret=f"file:{secret_file}", msg_type=msg_type)  # type: ignore[arg-type]
    channel = build_channel(cfg)
    await channel.send(make_alert(severity="P2", incident_id="inc-7"))
    await channel.aclose()
    (got,) = providers.feishu.received
    assert got.body["msg_type"] == msg_type
    if msg_type == "interactive":
        card = got.body["card"]
        assert card["header"]["template"] == "orange"
        assert card["header"]["title"]["content"].startswith("[P2] 快书包")
        assert "**事件**：inc-7" in card["elements"][0]["text"]["content"]
    else:
        assert "事件：inc-7" in got.body["content"]["text"]


async def test_feishu_bad_signature_and_rate_limit(providers: Providers) -> None:
    wrong = FeishuChannel("f", Secret(providers.feishu_url), secret=Secret("not-the-secret"))
    with pytest.raises(DeliveryError) as err:
        await wrong.send(make_alert())
    await wrong.aclose()
    assert not err.value.retryable and "19021" in err.value.message

    providers.feishu.fail_next(Fault(body={"code": 11232, "msg": "frequency limited"}))
    right = FeishuChannel("f", Secret(providers.feishu_url), secret=Secret(FEISHU_SECRET))
    with pytest.raises(DeliveryError) as err:
        await right.send(make_alert())
    assert err.value.retryable and err.value.retry_after == 5.0
    await right.send(make_alert())
    await right.aclose()
    assert len(providers.feishu.received) == 1


# --- Slack --------------------------------------------------------------------------------

async def test_slack_text_and_blocks(providers: Providers) -> None:
    channel = SlackChannel("s", Secret(providers.slack_url))
    await channel.send(make_alert(title="<b>&" + "长" * 200))
    await channel.aclose()
    (got,) = providers.slack.received
    header, facts, text = got.body["blocks"]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    assert {"type": "mrkdwn", "text": "*品牌*\n快书包"} in facts["fields"]
    assert "&lt;b&gt;&amp;" in got.body["text"]
    assert text["text"]["text"].startswith("@快书包")


@pytest.mark.parametrize(("fault", "retryable", "retry_after"), [
    (Fault(status=429, body="rate_limited", headers={"Retry-After": "7"}), True, 7.0),
    (Fault(status=400, body="invalid_payload"), False, None),
    (Fault(status=404, body="no_service"), False, None),
    (Fault(status=410, body="channel_is_archived"), False, None),
    (Fault(status=500, body="rollup_error"), True, None),
    (Fault(status=200, body="<html>captive portal</html>"), True, None),
])
async def test_slack_failures(providers: Providers, fault: Fault, retryable: bool,
                              retry_after: float | None) -> None:
    providers.slack.fail_next(fault)
    channel = SlackChannel("s", Secret(providers.slack_url))
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert (err.value.retryable, err.value.retry_after) == (retryable, retry_after)


def _bot(providers: Providers, token: str = SLACK_BOT_TOKEN) -> SlackChannel:
    return SlackChannel("s", token=Secret(token), channel=SLACK_CHANNEL,
                        api_url=providers.slack_api_url)


async def test_slack_bot_threads_an_incidents_updates_under_its_first_message(
        providers: Providers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_BOT_TOKEN)
    cfg = SlackChannelConfig(type="slack", name="s", token="env:SLACK_BOT_TOKEN",
                             channel=SLACK_CHANNEL, api_url=providers.slack_api_url)
    channel = build_channel(cfg)
    opened = make_alert(AlertType.CRISIS_OPENED, incident_id="inc-9", severity="P1", level=2)
    later = make_alert(AlertType.CRISIS_CHECKPOINT, incident_id="inc-9", severity="P3")
    worse = make_alert(AlertType.CRISIS_ESCALATED, incident_id="inc-9", severity="P1")
    try:
        root_ts = await channel.send(opened, Thread("inc-9", 0))
        assert await channel.send(later, Thread("inc-9", 1, opened, root_ts)) is None
        assert await channel.send(worse, Thread("inc-9", 2, opened, root_ts)) is None
        assert await channel.send(make_alert()) is None  # outside any incident: top level
    finally:
        await channel.aclose()
    first, second, third, other = providers.slack_bot.received
    assert root_ts == first.ts and "thread_ts" not in first.body
    assert first.headers["Authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert first.body["channel"] == SLACK_CHANNEL
    assert first.body["blocks"][0]["text"]["text"].startswith("【事件 inc-9】[P1]")
    assert (second.body["thread_ts"], second.body["reply_broadcast"]) == (root_ts, False)
    assert (third.body["thread_ts"], third.body["reply_broadcast"]) == (root_ts, True)  # P1
    assert "第2条更新" in third.body["text"] and "thread_ts" not in other.body


async def test_slack_bot_starts_the_thread_again_when_its_first_message_is_gone(
        providers: Providers) -> None:
    channel = _bot(providers)
    opened = make_alert(AlertType.CRISIS_OPENED, incident_id="inc-4")
    root_ts = await channel.send(opened, Thread("inc-4", 0))
    assert root_ts is not None
    providers.slack_deleted.add(root_ts)
    new_root = await channel.send(make_alert(AlertType.CRISIS_CHECKPOINT, incident_id="inc-4"),
                                  Thread("inc-4", 1, opened, root_ts))
    await channel.aclose()
    assert new_root == providers.slack_bot.received[-1].ts != root_ts
    assert "thread_ts" not in providers.slack_bot.received[-1].body


@pytest.mark.parametrize(("answer", "retryable", "retry_after"), [
    ({"ok": False, "error": "not_in_channel"}, False, None),
    ({"ok": False, "error": "ratelimited"}, True, 60.0),
    ({"ok": False, "error": "internal_error"}, True, None),
    ("<html>proxy</html>", True, None),
])
async def test_slack_bot_errors(providers: Providers, answer: Any, retryable: bool,
                                retry_after: float | None) -> None:
    providers.slack_bot.fail_next(Fault(body=answer))
    channel = _bot(providers)
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert (err.value.retryable, err.value.retry_after) == (retryable, retry_after)


async def test_slack_bot_wrong_token_is_permanent_and_not_shown(providers: Providers) -> None:
    channel = _bot(providers, token="xoxb-stolen-or-stale")
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert not err.value.retryable and err.value.message == "Slack: invalid_auth"
    assert not providers.slack_bot.received


def test_slack_config_is_a_webhook_or_a_bot_never_both() -> None:
    @dataclass(frozen=True)
    class Doc:
        channels: tuple[ChannelConfig, ...] = ()

    ok = load_table(Doc, {"channels": [
        {"type": "slack", "name": "a", "url": "env:SLACK_URL"},
        {"type": "slack", "name": "b", "token": "file:/run/slack-token", "channel": "C1",
         "broadcast": ["P1"]}]})
    assert [c.token for c in ok.channels] == ["", "file:/run/slack-token"]  # type: ignore[union-attr]
    with pytest.raises(SettingsError) as err:
        load_table(Doc, {"channels": [
            {"type": "slack", "name": "a"},
            {"type": "slack", "name": "b", "url": "env:U", "token": "env:T", "channel": "C1"},
            {"type": "slack", "name": "c", "token": "env:T"},
            {"type": "slack", "name": "d", "token": "env:T", "channel": "C", "broadcast": ["P0"]},
        ]})
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "channels[0].url", "channels[1].url", "channels[2].channel", "channels[3].broadcast"]


# --- what a robot that cannot thread says instead ----------------------------------------

async def test_robots_say_which_incident_and_which_update(providers: Providers) -> None:
    opened = make_alert(AlertType.CRISIS_OPENED, incident_id="inc-5", at=AT)
    update = make_alert(AlertType.CRISIS_ESCALATED, incident_id="inc-5", at=AT + 3600)
    thread = Thread("inc-5", 3, opened, None)
    channels: list[Any] = [
        DingTalkChannel("d", Secret(providers.dingtalk_url), secret=Secret(DINGTALK_SECRET)),
        WeComChannel("w", Secret(providers.wecom_url)),
        FeishuChannel("f", Secret(providers.feishu_url), secret=Secret(FEISHU_SECRET)),
        SlackChannel("s", Secret(providers.slack_url)),  # an incoming webhook cannot either
    ]
    for channel in channels:
        await channel.send(update, thread)
        await channel.aclose()
    texts = [providers.dingtalk.received[0].body["markdown"]["text"],
             providers.wecom.received[0].body["markdown"]["content"],
             json.dumps(providers.feishu.received[0].body["card"], ensure_ascii=False),
             providers.slack.received[0].body["text"]]
    fact = f"inc-5（第3条更新；首条：危机事件开启 05-01 09:05 {opened.id}）"
    for text in texts:
        assert "【事件 inc-5 · 第3条更新】[P1] 快书包 危机升级" in text and fact in text
    assert providers.dingtalk.received[0].body["markdown"]["title"].startswith("【事件 inc-5")


# --- generic webhook ----------------------------------------------------------------------

async def test_webhook_names_the_incident_thread_in_headers(providers: Providers) -> None:
    channel = WebhookChannel("ops", Secret(providers.webhook_url), secret=Secret(WEBHOOK_SECRET))
    opened = make_alert(AlertType.CRISIS_OPENED, incident_id="inc-2")
    update = make_alert(AlertType.CRISIS_CHECKPOINT, incident_id="inc-2")
    await channel.send(opened, Thread("inc-2", 0))
    await channel.send(update, Thread("inc-2", 1, opened))
    await channel.aclose()
    first, second = providers.webhook.received
    assert (first.headers["X-Crisismon-Incident"], first.headers["X-Crisismon-Update"]) == \
        ("inc-2", "0") and "X-Crisismon-Thread-Root" not in first.headers
    assert second.headers["X-Crisismon-Update"] == "1"
    assert second.headers["X-Crisismon-Thread-Root"] == opened.id
    assert second.raw == update.to_json().encode()  # the record itself is unchanged


async def test_webhook_posts_the_contract_record_signed_with_idempotency_key(
        providers: Providers) -> None:
    cfg = WebhookChannelConfig(type="webhook", name="ops", url=providers.webhook_url,
                               secret=WEBHOOK_SECRET)
    channel = build_channel(cfg)
    alert = make_alert(incident_id="inc-2")
    await channel.send(alert)
    await channel.aclose()
    (got,) = providers.webhook.received
    assert got.body == alert.to_record()
    assert got.raw == alert.to_json().encode()
    assert got.headers["Idempotency-Key"] == alert.id
    assert got.headers["Content-Type"].startswith("application/json")


async def test_webhook_fails_twice_then_delivers_under_one_key(providers: Providers) -> None:
    providers.webhook.fail_next(Fault(status=503, body={"error": "maintenance"}), times=2)
    channel = WebhookChannel("ops", Secret(providers.webhook_url), secret=Secret(WEBHOOK_SECRET))
    alert = make_alert()
    errors = []
    for _ in range(3):  # what the outbox does, minus the waiting
        try:
            await channel.send(alert)
            break
        except DeliveryError as exc:
            errors.append(exc)
    await channel.aclose()
    assert [e.retryable for e in errors] == [True, True]
    assert providers.webhook.attempts == 3 and len(providers.webhook.received) == 1


async def test_webhook_wrong_signature_is_rejected_permanently(providers: Providers) -> None:
    channel = WebhookChannel("ops", Secret(providers.webhook_url), secret=Secret("other"))
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert not err.value.retryable and err.value.message.startswith("HTTP 401")


async def test_slow_provider_times_out_retryably(providers: Providers) -> None:
    providers.webhook.fail_next(Fault(hang=True))
    channel = WebhookChannel("ops", Secret(providers.webhook_url), secret=Secret(WEBHOOK_SECRET),
                             timeout=0.2)
    async with asyncio.timeout(5):
        with pytest.raises(DeliveryError) as err:
            await channel.send(make_alert())
    await channel.aclose()
    assert err.value.retryable and "0.2s" in err.value.message


async def test_nobody_listening_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=s3cret-token"
    channel = WebhookChannel("ops", Secret(url), timeout=2)
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    await channel.aclose()
    assert err.value.retryable and "s3cret-token" not in err.value.message


# --- e-mail -------------------------------------------------------------------------------

@dataclass
class Mailbox:
    """What the loopback SMTP server received; ``reply`` overrides its answer to DATA."""

    port: int = 0
    envelopes: list[Envelope] = field(default_factory=list)
    reply: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reply:
            return self.reply
        self.envelopes.append(envelope)
        return "250 OK"


SMTP_USER, SMTP_PASSWORD = "alerts@example.com", "smtp-pa55"


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
    # handled=False: let aiosmtpd answer 535 itself (True means "I already replied").
    return AuthResult(success=ok, handled=False)


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(box, hostname="mx.test", authenticator=_authenticate,
                     auth_require_tls=False),
        "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


def _email_channel(box: Mailbox, password: str, tmp_path: Path) -> EmailChannel:
    (tmp_path / "smtp").write_text(password)
    cfg = EmailChannelConfig(type="email", name="mail", sender="crisismon <alerts@example.com>",
                             to=("duty@example.com", "总监 <boss@example.com>"), host="127.0.0.1",
                             port=box.port, tls="none", username=SMTP_USER,
                             password=f"file:{tmp_path / 'smtp'}", timeout=Duration(5))
    channel = build_channel(cfg)
    assert isinstance(channel, EmailChannel)
    return channel


async def test_email_arrives_utf8_with_a_stable_message_id(mailbox: Mailbox,
                                                           tmp_path: Path) -> None:
    channel = _email_channel(mailbox, SMTP_PASSWORD, tmp_path)
    alert = make_alert()
    await channel.send(alert)
    await channel.aclose()
    (env,) = mailbox.envelopes
    assert env.rcpt_tos == ["duty@example.com", "boss@example.com"]
    assert env.mail_from == "alerts@example.com"
    msg = email.message_from_bytes(env.original_content or b"", policy=email.policy.default)
    assert msg["Subject"] == "[P1] 快书包 reply.breach 回复超时：5分钟未回复：快递三天没到"
    assert msg["Message-ID"] == f"<{alert.id}@example.com>"
    assert msg.get_content_charset() == "utf-8"
    assert alert.text in msg.get_content() and "到期时间：2026-05-01 09:05:00 +08:00" \
        in msg.get_content()
    # The same alert again makes the same message: receivers can drop the duplicate.
    assert channel.message(alert)["Message-ID"] == msg["Message-ID"]


async def test_email_wrong_password_is_permanent(mailbox: Mailbox, tmp_path: Path) -> None:
    channel = _email_channel(mailbox, "wrong", tmp_path)
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    assert not err.value.retryable and "535" in err.value.message
    assert "wrong" not in err.value.message and not mailbox.envelopes


async def test_email_temporary_refusal_is_retryable(mailbox: Mailbox, tmp_path: Path) -> None:
    mailbox.reply = "451 4.3.0 try again later"
    channel = _email_channel(mailbox, SMTP_PASSWORD, tmp_path)
    with pytest.raises(DeliveryError) as err:
        await channel.send(make_alert())
    assert err.value.retryable and "451" in err.value.message


async def test_email_updates_reply_to_the_incidents_first_mail_across_a_restart(
        mailbox: Mailbox, tmp_path: Path) -> None:
    """Through the outbox, as the daemon sends: the first mail about an incident opens the
    conversation; after a restart its updates (a crisis step, a grouped update) reply."""
    db = tmp_path / "s.db"
    opened = make_alert(AlertType.CRISIS_OPENED, id="a-0001", incident_id="inc-8",
                        severity="P1", level=2)
    checkpoint = make_alert(AlertType.CRISIS_CHECKPOINT, id="a-0002", incident_id="inc-8",
                            severity="P2", at=AT + 3600)
    clock = SimClock(AT)
    store = Store(db)
    store.add_alerts([opened], ["mail"])
    first = Outbox(store, {"mail": _email_channel(mailbox, SMTP_PASSWORD, tmp_path)}, clock)
    await first.drain("mail")
    store.close()  # restart: only the store remembers the thread

    store = Store(db)
    store.add_alerts([checkpoint], ["mail"])
    clock.advance(3600)
    second = Outbox(store, {"mail": _email_channel(mailbox, SMTP_PASSWORD, tmp_path)}, clock)
    await second.drain("mail")
    audit = [e.detail for e in second.audit.entries(10) if e.outcome == "delivered"]
    store.close()
    root, reply = (email.message_from_bytes(e.original_content or b"",
                                            policy=email.policy.default)
                   for e in mailbox.envelopes)
    assert root["Message-ID"] == "<a-0001@example.com>" and root["In-Reply-To"] is None
    assert root["Subject"].startswith("[P1] 快书包 crisis.opened 危机事件开启")
    assert reply["Message-ID"] == "<a-0002@example.com>"
    assert reply["In-Reply-To"] == reply["References"] == "<a-0001@example.com>"
    assert reply["Subject"] == f"Re: {root['Subject']}"
    assert (reply["X-Crisismon-Incident"], reply["X-Crisismon-Update"]) == ("inc-8", "1")
    body = reply.get_content()
    assert body.startswith("[P2] 快书包 crisis.checkpoint 危机事件检查点")  # its own subject
    assert "事件：inc-8（第1条更新；首条：危机事件开启 05-01 09:05 a-0001）" in body
    assert audit == ["incident inc-8 update 0", "incident inc-8 update 1"]


# --- MQTT ---------------------------------------------------------------------------------

@pytest.fixture
def topic_prefix() -> str:
    """A prefix of our own, so tests never see each other's (retained) messages."""
    return f"crisismon-test/{uuid.uuid4().hex}"


def _mqtt_client(broker: tuple[str, int], protocol: str) -> aiomqtt.Client:
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    return aiomqtt.Client(broker[0], broker[1], protocol=version, timeout=5)


def _mqtt_channel(broker: tuple[str, int], protocol: str, prefix: str) -> MqttChannel:
    cfg = MqttChannelConfig(type="mqtt", name="mqtt", host=broker[0], port=broker[1],
                            prefix=prefix, protocol=protocol,  # type: ignore[arg-type]
                            timeout=Duration(5))
    channel = build_channel(cfg)
    assert isinstance(channel, MqttChannel)
    return channel


async def _retained(broker: tuple[str, int], protocol: str, topic: str,
                    marker: str) -> bytes | None:
    """The retained payload on ``topic`` as a new subscriber sees it, None if none.

    ``marker`` is a retained topic subscribed *after* ``topic``: once its message is in, the
    broker has sent whatever it retained for ``topic``, so absence is proven without waiting.
    """
    found: bytes | None = None
    async with _mqtt_client(broker, protocol) as client:
        await client.subscribe(topic, qos=1)
        await client.subscribe(marker, qos=1)
        async with asyncio.timeout(5):
            async for msg in client.messages:
                if msg.topic.matches(marker):
                    return found
                found = bytes(msg.payload)  # type: ignore[arg-type]
    return found


async def test_mqtt_publishes_the_record_at_qos1(mqtt_broker: tuple[str, int],
                                                 mqtt_protocol: str, topic_prefix: str) -> None:
    alert = make_alert()
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as sub, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as channel:
        await sub.subscribe(f"{topic_prefix}/#", qos=1)
        await channel.send(alert)
        async with asyncio.timeout(5):
            msg = await anext(aiter(sub.messages))
    assert str(msg.topic) == f"{topic_prefix}/快书包/reply.breach"
    assert msg.payload == alert.to_json().encode() and msg.qos == 1 and not msg.retain


async def test_mqtt_send_batch_publishes_every_alert_in_order_with_incident_updates(
        mqtt_broker: tuple[str, int], mqtt_protocol: str, topic_prefix: str) -> None:
    batch = [make_alert(AlertType.MENTION_NEW, id=f"a-{i:016x}", post_id=str(i),
                        incident_id="inc-7" if i % 2 else None) for i in range(300)]
    threads = [Thread("inc-7", i // 2) if a.incident_id else None for i, a in enumerate(batch)]
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as sub, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as channel:
        await sub.subscribe(f"{topic_prefix}/#", qos=1)
        results = await channel.send_batch(list(zip(batch, threads, strict=True)))
        assert results == [None] * 300  # every PUBACK in
        got: list[tuple[str, str]] = []
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                got.append((str(msg.topic), json.loads(msg.payload)["id"]))  # type: ignore[arg-type]
                if len(got) == 450:
                    break
    plain = [aid for topic, aid in got if topic.endswith("/mention.new")]
    updates = [aid for topic, aid in got if topic.endswith("/incident/inc-7/updates")]
    assert plain == [a.id for a in batch]  # one publish each, in the outbox's order
    assert updates == [a.id for a in batch if a.incident_id]


async def test_mqtt_send_batch_larger_than_its_window_sends_the_rest_as_pubacks_come(
        mqtt_broker: tuple[str, int], mqtt_protocol: str, topic_prefix: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alerts.channels.mqtt.INFLIGHT", 7)  # 250 alerts: ~36 windows
    batch = [make_alert(AlertType.MENTION_NEW, id=f"a-{i:016x}", post_id=str(i))
             for i in range(250)]
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as sub, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as channel:
        await sub.subscribe(f"{topic_prefix}/#", qos=1)
        results = await channel.send_batch([(a, None) for a in batch])
        assert results == [None] * 250
        assert channel._acks == {}  # every PUBACK matched, nothing left waiting
        got: list[str] = []
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                got.append(json.loads(msg.payload)["id"])  # type: ignore[arg-type]
                if len(got) == 250:
                    break
    assert got == [a.id for a in batch]


async def test_mqtt_send_batch_reports_each_failure_in_place() -> None:
    channel = MqttChannel("mqtt", host="127.0.0.1", port=free_port(), timeout=0.2)
    try:
        results = await channel.send_batch([(make_alert(), None), (make_alert(), None)])
    finally:
        await channel.aclose()
    assert [type(r) for r in results] == [DeliveryError, DeliveryError]
    assert all(r.retryable for r in results)  # type: ignore[union-attr]


async def test_mqtt_incident_state_is_retained_and_cleared_on_close(
        mqtt_broker: tuple[str, int], mqtt_protocol: str, topic_prefix: str) -> None:
    incident = f"inc-{uuid.uuid4().hex[:6]}"
    state_topic = f"{topic_prefix}/快书包/incident/{incident}"
    marker = f"{topic_prefix}/marker"
    kw = dict(incident_id=incident, post_id=None, severity="P1", level=2)
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as admin, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as channel:
        await admin.publish(marker, b"x", qos=1, retain=True)
        try:
            await channel.send(make_alert(AlertType.CRISIS_OPENED, **kw))
            opened = await _retained(mqtt_broker, mqtt_protocol, state_topic, marker)
            assert opened is not None and json.loads(opened)["state"] == "opened"
            assert json.loads(opened)["incident_id"] == incident

            await channel.send(make_alert(AlertType.CRISIS_ESCALATED, **kw))
            escalated = await _retained(mqtt_broker, mqtt_protocol, state_topic, marker)
            assert escalated is not None and json.loads(escalated)["state"] == "escalated"

            await channel.send(make_alert(AlertType.CRISIS_CLOSED, **kw))
            assert await _retained(mqtt_broker, mqtt_protocol, state_topic, marker) is None
        finally:  # leave nothing retained behind
            await admin.publish(state_topic, b"", qos=1, retain=True)
            await admin.publish(marker, b"", qos=1, retain=True)


async def test_mqtt_incident_updates_have_a_topic_of_their_own(
        mqtt_broker: tuple[str, int], mqtt_protocol: str, topic_prefix: str) -> None:
    opened = make_alert(AlertType.CRISIS_OPENED, incident_id="inc-6", post_id=None)
    update = make_alert(AlertType.MENTION_NEW, incident_id="inc-6", title="事件 inc-6 更新")
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as sub, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as channel:
        await sub.subscribe(f"{topic_prefix}/快书包/incident/inc-6/updates", qos=1)
        try:
            await channel.send(opened, Thread("inc-6", 0))
            await channel.send(update, Thread("inc-6", 1, opened))
            got = []
            async with asyncio.timeout(5):
                async for msg in sub.messages:
                    got.append(msg)
                    if len(got) == 2:
                        break
        finally:  # the retained state of crisis.opened must not outlive the test
            await channel.send(make_alert(AlertType.CRISIS_CLOSED, incident_id="inc-6",
                                          post_id=None))
    assert [m.payload for m in got] == [opened.to_json().encode(), update.to_json().encode()]
    assert all(m.qos == 1 and not m.retain for m in got)
    if mqtt_protocol == "5":
        props = dict(got[1].properties.UserProperty)  # type: ignore[union-attr]
        assert props == {"alert-id": update.id, "incident-id": "inc-6", "update": "1"}


async def test_mqtt_reconnects_when_the_broker_comes_up(topic_prefix: str) -> None:
    port = free_port()
    channel = MqttChannel("mqtt", host="127.0.0.1", port=port, prefix=topic_prefix,
                          protocol=own_broker_protocol(),  # type: ignore[arg-type]
                          timeout=0.3, reconnect_min=0.05, reconnect_max=0.2)
    await channel.start()
    try:
        with pytest.raises(DeliveryError) as err:
            await channel.send(make_alert())
        assert err.value.retryable and not channel.connected
        with start_broker(port) as broker:
            async with asyncio.timeout(10):
                await channel.wait_connected()
            address = (broker.host, broker.port)
            alert = make_alert()
            async with _mqtt_client(address, broker.protocol) as sub:
                await sub.subscribe(f"{topic_prefix}/#", qos=1)
                await channel.send(alert)
                async with asyncio.timeout(5):
                    msg = await anext(aiter(sub.messages))
            assert msg.payload == alert.to_json().encode()
    finally:
        await channel.aclose()


# --- terminal -----------------------------------------------------------------------------

class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_terminal_prints_one_plain_line_when_piped() -> None:
    out = io.StringIO()
    channel = TerminalChannel("term", out)
    alert = make_alert(title="第一行\n第二行", incident_id="inc-3")
    await channel.send(alert)
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x1b[" not in line
    assert line == (f"09:05:00 P1 快书包 reply.breach 回复超时 L1 客服总监 帖子 4987654321 "
                    f"事件 inc-3 — 第一行 第二行 [{alert.id}]\n")


async def test_terminal_line_names_the_incident_update() -> None:
    out = io.StringIO()
    alert = make_alert(AlertType.CRISIS_CHECKPOINT, incident_id="inc-3", post_id=None)
    await TerminalChannel("term", out).send(alert, Thread("inc-3", 2, make_alert()))
    assert " 事件 inc-3 更新2 — " in out.getvalue()


async def test_terminal_colours_only_a_tty() -> None:
    out = _Tty()
    await TerminalChannel("term", out).send(make_alert())
    assert "\x1b[1;97;41m P1 \x1b[0m" in out.getvalue()


# --- secrets and settings ------------------------------------------------------------------

def test_secret_refs_resolve_and_errors_name_the_ref_not_the_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("  from-file \n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("TOKEN", "from-env")
    assert resolve_secret("env:TOKEN") == "from-env"
    assert resolve_secret(f"file:{tmp_path / 'token'}") == "from-file"
    assert resolve_secret("credential:token") == "from-file"
    assert resolve_secret("plain-literal") == "plain-literal"
    with pytest.raises(SecretError, match=r"^secret env:MISSING: environment variable MISSING"):
        resolve_secret("env:MISSING")
    with pytest.raises(SecretError, match="no such file"):
        resolve_secret("credential:absent")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret("credential:empty")
    secret = load_secret("env:TOKEN")
    assert repr(secret) == str(secret) == f"{secret}" == "***" and secret.reveal() == "from-env"


def test_channel_settings_load_from_tables_and_name_bad_keys() -> None:
    @dataclass(frozen=True)
    class Doc:
        channels: tuple[ChannelConfig, ...] = ()

    doc = load_table(Doc, {"channels": [
        {"type": "dingtalk", "name": "pr", "url": "env:DT_URL", "secret": "env:DT_SECRET",
         "timeout": "5s"},
        {"type": "mqtt", "name": "bus"},
        {"type": "terminal", "name": "console"},
    ]})
    assert [type(c).__name__ for c in doc.channels] == [
        "DingTalkChannelConfig", "MqttChannelConfig", "TerminalChannelConfig"]
    assert doc.channels[0].timeout == 5.0
    with pytest.raises(SettingsError) as err:
        load_table(Doc, {"channels": [
            {"type": "slack", "name": "s", "url": "hooks.slack.com/x"},
            {"type": "feishu", "name": "f", "url": "env:F", "secret": "credential:a/b"},
            {"type": "email", "name": "m", "sender": "a@b.c", "to": ["x@y.z"], "colour": 1},
        ]})
    problems = err.value.problems
    assert any(p.startswith("channels[0].url: must start with https://") for p in problems)
    assert any(p.startswith("channels[1].secret:") and "plain file name" in p for p in problems)
    assert any(p.startswith("channels[2].colour: unknown key") for p in problems)


def test_missing_secret_fails_at_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_URL", raising=False)
    cfg = SlackChannelConfig(type="slack", name="s", url="env:NO_SUCH_URL")
    with pytest.raises(SecretError, match="env:NO_SUCH_URL"):
        build_channel(cfg)
    assert WeComChannelConfig(type="wecom", name="w", url="https://x").timeout == 10.0
