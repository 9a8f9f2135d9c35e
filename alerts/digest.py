"""A digest as a record, as an outbox message, and as each provider shows it.

The figures are computed by ``monitor.digests``; here they are only carried and
rendered: HTML e-mail (plots inline), DingTalk / WeCom markdown, a Feishu card and
Slack blocks, each within its provider's size limits. A digest too big for a chat robot
lists fewer top posts per brand first, then fewer brands (saying how many were left
out); the e-mail always has everything.

A digest travels through the outbox as an :class:`~rules.records.Alert` of type
``digest`` whose ``text`` is the JSON of the record (and the plots, base64): stored,
retried and audited like any page, rendered by each channel when it is sent.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.records import Alert, AlertType

DINGTALK_MAX_BYTES = 18_000
"""DingTalk caps a robot message at about 20,000 bytes."""
WECOM_MAX_BYTES = 4096
"""WeCom: markdown content at most 4096 bytes of UTF-8."""
FEISHU_MAX_BYTES = 18_000
"""Feishu: a request is capped at 20 KB (the card's JSON included)."""
SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION = 3000
SLACK_MAX_HEADER = 150
SLACK_MAX_TEXT = 3000
EMAIL_MAX_BYTES = 10 * 1024 * 1024
"""Most mail servers take 10 MB and more; a digest with its plots is ~0.2 MB."""
TOP_STEPS = (20, 5, 3, 1, 0)
"""Top posts per brand tried, most first, until a chat rendering fits."""


@dataclass(frozen=True)
class Digest:
    """One digest: a name, a period and the figures of each brand (``digests.jsonl``)."""

    id: str
    name: str
    at: str
    """When it was made (ISO 8601, local offset): the period's end for a scheduled one."""
    period_start: str
    period_end: str
    reply_within: float
    brands: list[dict[str, Any]] = field(default_factory=list)
    """Per brand: ``brand``, ``mentions``, ``negative``, ``negative_share``, ``baseline``,
    ``needing_reply``, ``replied_in_time``, ``replied_in_time_pct``, ``pending``,
    ``median_reply_seconds``, ``p90_reply_seconds``, ``breaches`` (by level),
    ``incidents``, ``top_posts``."""

    def record(self) -> dict[str, Any]:
        """The ``digests.jsonl`` line, keys in a fixed order."""
        return {"name": self.name, "at": self.at, "period_start": self.period_start,
                "period_end": self.period_end, "id": self.id,
                "reply_within_seconds": self.reply_within, "brands": self.brands}

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Digest:
        return cls(id=rec["id"], name=rec["name"], at=rec["at"],
                   period_start=rec["period_start"], period_end=rec["period_end"],
                   reply_within=float(rec.get("reply_within_seconds", 300.0)),
                   brands=list(rec["brands"]))


def digest_alert(digest: Digest, plots: dict[str, bytes] | None = None) -> Alert:
    """The outbox message carrying ``digest`` (and its plots, base64 PNG)."""
    body = {"digest": digest.record(),
            "plots": {k: base64.b64encode(v).decode() for k, v in (plots or {}).items()}}
    return Alert(id=digest.id, type=AlertType.DIGEST,
                 at=datetime.fromisoformat(digest.period_end).timestamp(),
                 brand=",".join(b["brand"] for b in digest.brands), level=0, severity="P4",
                 title=title(digest), text=json.dumps(body, ensure_ascii=False))


def is_digest(alert: Alert) -> bool:
    return alert.type is AlertType.DIGEST


def from_alert(alert: Alert) -> tuple[Digest, dict[str, bytes]]:
    """The digest and its plots back from an outbox message."""
    body = json.loads(alert.text)
    plots = {k: base64.b64decode(v) for k, v in (body.get("plots") or {}).items()}
    return Digest.from_record(body["digest"]), plots


# --------------------------------------------------------------------- wording
def _dt(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def span(digest: Digest) -> str:
    """``05-20 09:00 – 05-21 09:00``."""
    a, b = _dt(digest.period_start), _dt(digest.period_end)
    return f"{a:%m-%d %H:%M} – {b:%m-%d %H:%M}"


def title(digest: Digest) -> str:
    """``舆情摘要 daily：05-20 09:00 – 05-21 09:00``."""
    return f"舆情摘要 {digest.name}：{span(digest)}"


def dur(s: float | None) -> str:
    """``4m05s``, ``2h03m``, ``—`` for none."""
    if s is None:
        return "—"
    s = round(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def pct(x: float | None, scale: float = 100.0) -> str:
    return "—" if x is None else f"{x * scale:.1f}%"


def followers(n: int) -> str:
    return f"{n / 10000:.1f}万粉" if n >= 10000 else f"{n}粉"


def _versus(now: float | None, base: float | None, fmt: Callable[[float], str]) -> str:
    if base is None or now is None:
        return "（暂无基线）"
    arrow = "↑" if now > base else "↓" if now < base else "="
    return f"（基线 {fmt(base)} {arrow}）"


def facts(b: dict[str, Any], reply_within: float) -> list[tuple[str, str]]:
    """The labelled figures of one brand, in reading order (plain text values)."""
    base = b.get("baseline") or {}
    share = b.get("negative_share")
    br = b.get("breaches") or {}
    rate = b.get("replied_in_time_pct")
    return [
        ("提及", f"{b['mentions']} 条" + _versus(b["mentions"], base.get("mentions"),
                                                 lambda x: f"{x:g} 条")),
        ("负面", f"{b['negative']} 条，占 {pct(share)}"
         + _versus(share, base.get("negative_share"), pct)),
        (f"{reply_within / 60:g} 分钟内回复" if reply_within % 60 == 0
         else f"{dur(reply_within)} 内回复",
         f"{b['replied_in_time']}/{b['needing_reply'] - b.get('pending', 0)}"
         f"（{'—' if rate is None else f'{rate}%'}）"
         + (f"，另 {b['pending']} 条未到期" if b.get("pending") else "")),
        ("回复用时", f"中位 {dur(b.get('median_reply_seconds'))}，"
                     f"P90 {dur(b.get('p90_reply_seconds'))}"),
        ("超时告警", f"L0 提醒 {br.get('L0', 0)} · L1 超时 {br.get('L1', 0)} · "
                     f"L2 升级 {br.get('L2', 0)}"),
    ]


def incident_line(i: dict[str, Any]) -> str:
    """``inc-1 danger P1 05-20 14:00 开启，发现 0s，声明 1h25m，进行中``."""
    state = f"{_dt(i['closed_at']):%m-%d %H:%M} 关闭" if i.get("closed_at") else "进行中"
    statement = dur(i["statement_seconds"]) if i.get("statement_seconds") is not None \
        else "未发声明"
    return (f"{i['id']} {i.get('trigger') or ''} {i.get('severity') or ''} "
            f"{_dt(i['opened_at']):%m-%d %H:%M} 开启，发现用时 {dur(i.get('detection_seconds'))}，"
            f"声明用时 {statement}，{state}")


def post_line(p: dict[str, Any], limit: int = 60) -> str:
    """``@author（52.0万粉，负面，未回复）text…``."""
    text = " ".join(str(p["text"]).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    tags = [followers(int(p["followers"])), "负面" if p["negative"] else "非负面",
            "已回复" if p["replied"] else "未回复"]
    return f"@{p['author']}（{'，'.join(tags)}）{text}"


# --------------------------------------------------------------------- chat markdown
def _markdown_brand(b: dict[str, Any], reply_within: float, top: int, style: str) -> str:
    """One brand as markdown lines. ``style``: ``dingtalk`` (a blank line breaks a line),
    ``wecom``, ``lark`` (Feishu lark_md) or ``slack`` (mrkdwn)."""
    bold = (lambda s: f"*{s}*") if style == "slack" else (lambda s: f"**{s}**")
    esc = _slack_escape if style == "slack" else _md_escape
    lines = [f"{'*' if style == 'slack' else '### '}{esc(b['brand'])}"
             f"{'*' if style == 'slack' else ''}"]
    for label, value in facts(b, reply_within):
        lines.append(f"{bold(label)}：{esc(value)}")
    incidents = b.get("incidents") or []
    if incidents:
        lines.append(bold(f"危机事件 {len(incidents)} 起"))
        lines += [f"- {esc(incident_line(i))}" for i in incidents]
    posts = (b.get("top_posts") or [])[:top]
    if posts:
        lines.append(bold("影响最大的帖子"))
        lines += [f"{n}. {esc(post_line(p))}" for n, p in enumerate(posts, 1)]
    sep = "\n\n" if style == "dingtalk" else "\n"
    return sep.join(lines)


def _md_escape(text: str) -> str:
    # A customer's words must not become markup (links, headings, font tags).
    return (text.replace("<", "＜").replace(">", "＞").replace("[", "［").replace("]", "］")
            .replace("*", "＊").replace("#", "＃").replace("`", "'"))


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(render: Callable[[int, int], str], size: Callable[[str], int], limit: int,
         n_brands: int) -> str:
    """The fullest rendering within ``limit``: fewer top posts first, then fewer brands."""
    for keep in range(n_brands, -1, -1):
        for top in TOP_STEPS:
            text = render(top, keep)
            if size(text) <= limit:
                return text
    raise ValueError("a digest heading alone exceeds the provider's limit")


def _utf8(text: str) -> int:
    return len(text.encode())


def _left_out(digest: Digest, keep: int, style: str) -> list[str]:
    rest = len(digest.brands) - keep
    if rest <= 0:
        return []
    return [f"另有 {rest} 个品牌未列出（消息长度所限），详见邮件版摘要。"]


def chat_markdown(digest: Digest, style: str, limit: int) -> str:
    """The digest as markdown for a chat robot (``dingtalk``, ``wecom``, ``lark``), at
    most ``limit`` bytes of UTF-8."""
    sep = "\n\n" if style == "dingtalk" else "\n"

    def render(top: int, keep: int) -> str:
        parts = [f"{'####' if style == 'dingtalk' else '##'} {_md_escape(title(digest))}"]
        parts += [_markdown_brand(b, digest.reply_within, top, style)
                  for b in digest.brands[:keep]]
        parts += _left_out(digest, keep, style)
        if not digest.brands:
            parts.append("（没有配置品牌）")
        return (sep + ("\n" if style != "dingtalk" else "")).join(parts)

    return _fit(render, _utf8, limit, len(digest.brands))


def dingtalk_payload(digest: Digest) -> dict[str, object]:
    """DingTalk robot markdown message (within ``DINGTALK_MAX_BYTES``)."""
    return {"msgtype": "markdown",
            "markdown": {"title": title(digest)[:60],
                         "text": chat_markdown(digest, "dingtalk", DINGTALK_MAX_BYTES)},
            "at": {"atMobiles": [], "isAtAll": False}}


def wecom_payload(digest: Digest) -> dict[str, object]:
    """WeCom robot markdown message (within ``WECOM_MAX_BYTES``)."""
    return {"msgtype": "markdown",
            "markdown": {"content": chat_markdown(digest, "wecom", WECOM_MAX_BYTES)}}


def feishu_payload(digest: Digest) -> dict[str, object]:
    """A Feishu interactive card: one lark_md block per brand (whole body within
    ``FEISHU_MAX_BYTES``)."""

    def card(top: int, keep: int) -> dict[str, object]:
        elements: list[dict[str, object]] = []
        for b in digest.brands[:keep]:
            if elements:
                elements.append({"tag": "hr"})
            elements.append({"tag": "div", "text": {
                "tag": "lark_md", "content": _markdown_brand(b, digest.reply_within, top, "lark")}})
        for note in _left_out(digest, keep, "lark"):
            elements.append({"tag": "note", "elements": [{"tag": "plain_text", "content": note}]})
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title(digest)},
                       "template": "blue"},
            "elements": elements}}

    def render(top: int, keep: int) -> str:
        return json.dumps(card(top, keep), ensure_ascii=False)

    return json.loads(_fit(render, _utf8, FEISHU_MAX_BYTES - 200, len(digest.brands)))


def slack_payload(digest: Digest) -> dict[str, object]:
    """Slack blocks: a header, then per brand a section of figures, one of incidents
    and one of top posts (each at most 3000 characters), at most 50 blocks."""

    def blocks(top: int, keep: int) -> list[dict[str, object]]:
        out: list[dict[str, object]] = [{"type": "header", "text": {
            "type": "plain_text", "text": title(digest)[:SLACK_MAX_HEADER], "emoji": True}}]
        for b in digest.brands[:keep]:
            out.append({"type": "divider"})
            text = _markdown_brand(b, digest.reply_within, top, "slack")
            # A section holds 3000 characters: a long brand is split at line ends.
            chunk = ""
            for line in text.split("\n"):
                line = line[:SLACK_MAX_SECTION]
                if chunk and len(chunk) + 1 + len(line) > SLACK_MAX_SECTION:
                    out.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
                    chunk = ""
                chunk = f"{chunk}\n{line}" if chunk else line
            if chunk:
                out.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        for note in _left_out(digest, keep, "slack"):
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        return out

    def render(top: int, keep: int) -> str:
        return json.dumps(blocks(top, keep), ensure_ascii=False)

    chosen = json.loads(_fit(render, lambda s: len(json.loads(s)), SLACK_MAX_BLOCKS,
                             len(digest.brands)))
    summary = "；".join(f"{b['brand']} 提及 {b['mentions']}，负面 {b['negative']}，"
                       f"按时回复 {b['replied_in_time']}/{b['needing_reply']}"
                       for b in digest.brands)
    return {"text": _slack_escape(f"{title(digest)}：{summary}")[:SLACK_MAX_TEXT],
            "blocks": chosen}


def plain_text(digest: Digest) -> str:
    """Everything, as plain text (the e-mail's text part, the terminal, the CLI)."""
    lines = [title(digest), f"生成时间：{digest.at}", ""]
    for b in digest.brands:
        lines.append(f"【{b['brand']}】")
        lines += [f"  {label}：{value}" for label, value in facts(b, digest.reply_within)]
        for i in b.get("incidents") or []:
            lines.append(f"  危机事件：{incident_line(i)}")
        for n, p in enumerate(b.get("top_posts") or [], 1):
            lines.append(f"  热帖 {n}：{post_line(p, 100)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------- e-mail
PLOT_TITLES = {"mentions_per_hour": "每小时提及数（按情感）", "reply_times": "回复用时分布",
               "sla_compliance": "按时回复率（各品牌、各小时）"}

_CSS = ("body{font:14px/1.5 'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',system-ui,"
        "sans-serif;color:#1d2129;max-width:960px;margin:0 auto;padding:16px}"
        "h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 6px;"
        "border-bottom:2px solid #2563eb;padding-bottom:2px}"
        "table{border-collapse:collapse;margin:6px 0 12px;width:100%}"
        "td,th{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}"
        "th{background:#f3f4f6;width:9em}.neg{color:#b91c1c}.mute{color:#6b7280}"
        "img{max-width:100%;border:1px solid #eee;margin:6px 0}")


def html_page(digest: Digest, plots: dict[str, bytes] | None = None,
              src: Callable[[str], str] | None = None) -> str:
    """The digest as one HTML page. ``src(name)`` is each plot's address: ``cid:…`` in
    a mail; by default a ``data:`` URI, so the page stands alone (``--html``)."""
    esc = html.escape
    plots = plots or {}
    src = src or (lambda name: "data:image/png;base64,"
                  + base64.b64encode(plots[name]).decode())
    parts = ["<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
             f"<title>{esc(title(digest))}</title><style>{_CSS}</style></head><body>",
             f"<h1>{esc(title(digest))}</h1>",
             f"<p class='mute'>统计区间 {esc(digest.period_start)} 至 {esc(digest.period_end)}"
             f"（不含结束时刻）；生成于 {esc(digest.at)}。回复率不计尚未到期的提及。</p>"]
    for b in digest.brands:
        parts.append(f"<h2>{esc(b['brand'])}</h2><table>")
        for label, value in facts(b, digest.reply_within):
            parts.append(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
        parts.append("</table>")
        incidents = b.get("incidents") or []
        if incidents:
            parts.append("<table><tr><th>事件</th><th>触发</th><th>严重度</th><th>开启</th>"
                         "<th>发现用时</th><th>声明用时</th><th>状态</th></tr>")
            for i in incidents:
                statement = dur(i["statement_seconds"]) if i.get("statement_seconds") \
                    is not None else "未发声明"
                state = f"{i['closed_at'][5:16].replace('T', ' ')} 关闭" \
                    if i.get("closed_at") else "进行中"
                parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in (
                    i["id"], i.get("trigger") or "", i.get("severity") or "",
                    i["opened_at"][5:16].replace("T", " "), dur(i.get("detection_seconds")),
                    statement, state)) + "</tr>")
            parts.append("</table>")
        posts = b.get("top_posts") or []
        if posts:
            parts.append("<table><tr><th>作者</th><th>粉丝</th><th>发布时间</th><th>内容</th>"
                         "<th>回复</th></tr>")
            for p in posts:
                cls = " class='neg'" if p["negative"] else ""
                parts.append(
                    f"<tr><td>@{esc(str(p['author']))}</td><td>{esc(followers(p['followers']))}"
                    f"</td><td>{esc(p['created_at'][5:16].replace('T', ' '))}</td>"
                    f"<td{cls}>{esc(str(p['text']))}</td>"
                    f"<td>{'已回复' if p['replied'] else '未回复'}</td></tr>")
            parts.append("</table>")
    if plots:
        parts.append("<h2>图表</h2>")
        for name in plots:
            caption = PLOT_TITLES.get(name) or (f"危机事件 {name[9:]}" if name.startswith(
                "incident_") else name.replace("_", " "))
            parts.append(f"<h3>{esc(caption)}</h3><img alt='{esc(caption)}' src='{src(name)}'>")
    parts.append("<p class='mute'>crisismon</p></body></html>\n")
    return "\n".join(parts)
