"""What each page says, in Chinese, for the responder who reads it on a phone.

Kept apart from the engine so the rules read as rules. Every function returns
``(title, text)`` and is pure: same state in, same words out (replays are byte-identical).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING

from rules.deadlines import reply_due
from rules.policy import CrisisConfig, SlaConfig
from rules.records import (
    TWO_DIGITS,
    AlertType,
    Post,
    format_duration,
    local_minute,
    minute_cache,
)

if TYPE_CHECKING:
    from rules.crisis import Incident
    from rules.engine import ReplyClock

EXCERPT = 80


def clock_time(t: float, tz: tzinfo) -> str:
    """``05-31 17:46:55`` in the configured zone."""
    s = int(t)
    if s == t:  # whole seconds: the minute is cached (see ``format_instant``)
        try:
            prefix = _CLOCK_MINUTES[tz][s // 60]
        except KeyError:
            prefix = _clock_minute(s // 60, tz)
        if prefix is not None:
            return prefix + TWO_DIGITS[s % 60]
    d = datetime.fromtimestamp(t, tz)  # as strftime("%m-%d %H:%M:%S"), at half the cost
    return f"{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"


_CLOCK_MINUTES: dict[tzinfo, dict[int, str | None]] = {}
"""``_clock_minute``'s answers, by zone and minute (``rules.records.minute_cache``)."""


def _clock_minute(minute: int, tz: tzinfo) -> str | None:
    d = local_minute(minute, tz)
    prefix = None if d is None else f"{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:"
    minute_cache(_CLOCK_MINUTES, tz)[minute] = prefix
    return prefix


def excerpt(text: str, limit: int = EXCERPT) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def author_line(post: Post) -> str:
    a = post.author
    return _author_line(a.screen_name or a.id, a.verified, a.followers_count)


def _author_line(name: str, verified: bool, followers: int) -> str:
    badge = "（认证）" if verified else ""
    return f"@{name}{badge} 粉丝 {followers:,}"


def _clock_author(clock: ReplyClock) -> str:
    return _author_line(clock.author_name or clock.author_id, clock.verified, clock.followers)


@lru_cache(maxsize=4096)
def _mention_page(clock: ReplyClock) -> tuple[str, str]:
    """``@name`` for the title (the author line up to its first space) and the body lines
    every mention page opens with (joined), built together: a replay words ~130,000 of
    these pages, and both start from the author line. Cached by clock: what they show of
    it never changes once it is made, and its warning, breach and escalation pages follow
    its first page within minutes."""
    c = clock
    author = _clock_author(c)
    mood = "负面" if c.negative else "非负面"
    lines = [
        f"{author}：{excerpt(c.text)}",
        f"情感 {c.sentiment:.2f}（{mood}） 严重度 {c.severity}",
    ]
    if c.reasons:
        lines.append("原因：" + "；".join(c.reasons))
    lines.append(f"微博 {c.post_id}（{'评论' if c.kind == 'comment' else '微博'}） "
                 f"转发 {c.reposts_count} 评论 {c.comments_count}")
    return author.split(" ", 1)[0], "\n".join(lines)


def _mention_body(clock: ReplyClock) -> list[str]:
    return [_mention_page(clock)[1]]


def new_mention(clock: ReplyClock, sla: SlaConfig, tz: tzinfo) -> tuple[str, str]:
    due = reply_due(clock.created_at, sla)
    who, head = _mention_page(clock)
    title = f"[{clock.severity}] {clock.brand} 新提及 {who}"
    return title, (f"{head}\n请在 {clock_time(due, tz)} 前公开回复"
                   f"（{_duration(sla.reply_within)}规则）")


_OVERDUE = {
    AlertType.REPLY_WARNING: ("即将超时", "值班客服请尽快公开回复"),
    AlertType.REPLY_BREACH: ("回复超时", "已超过回复时限，升级至客服总监"),
    AlertType.REPLY_ESCALATED: ("严重超时", "仍无官方回复，升级至公司领导"),
}


def reply_overdue(clock: ReplyClock, alert_type: AlertType, sla: SlaConfig,
                  tz: tzinfo) -> tuple[str, str]:
    short, advice = _OVERDUE[alert_type]
    lead, who, stem = (_overdue_stem(clock, tz) if sla is clock.sla
                       else _overdue_parts(clock, sla, tz))
    title = f"{lead}{short}：{who}"
    text = stem + advice
    if clock.acked_by:
        text += f"\n已由 {clock.acked_by} 确认（确认不停止计时，只有公开回复才算）"
    return title, text


def _overdue_parts(clock: ReplyClock, sla: SlaConfig, tz: tzinfo) -> tuple[str, str, str]:
    """What a mention's warning, breach and escalation pages share: the title up to the
    step's word, ``@name``, and the text up to the step's advice."""
    created = clock.created_at
    who, head = _mention_page(clock)
    return (f"[{clock.severity}] {clock.brand} ", who,
            f"{head}\n发布于 {clock_time(created, tz)}，"
            f"回复时限 {clock_time(reply_due(created, sla), tz)}；")


@lru_cache(maxsize=4096)
def _overdue_stem(clock: ReplyClock, tz: tzinfo) -> tuple[str, str, str]:
    """``_overdue_parts`` under the mention's own reply rule (``ReplyClock.sla``, fixed
    when it was first seen), worked out once for its (up to) three overdue pages instead
    of once each, which formatted two times and copied the page's head each time."""
    return _overdue_parts(clock, clock.sla, tz)


@lru_cache(maxsize=64)
def _duration(seconds: float) -> str:
    """``format_duration`` of a configured span: a handful of values, one per page."""
    return format_duration(seconds)


def not_public(clock: ReplyClock, sla: SlaConfig, tz: tzinfo) -> tuple[str, str]:
    title = f"[{clock.severity}] {clock.brand} 私下处理后未公开跟进"
    body = _mention_body(clock)
    at = clock.private_resolve_at or 0.0
    body.append(f"{clock_time(at, tz)} 私下解决，{format_duration(sla.public_followup_within)}"
                "内无官方公开回复。公开的投诉要公开了结：请在原微博下公开回复处理结果。")
    return title, "\n".join(body)


def argument(post: Post, brand: str, terms: tuple[str, ...], clock: ReplyClock | None,
             tz: tzinfo) -> tuple[str, str]:
    title = f"[P2] {brand} 官方回复疑似与用户争执"
    lines = [f"官方账号 {author_line(post)} 于 {clock_time(post.created_at, tz)} 回复：",
             excerpt(post.text, 140),
             f"问题用语：{'、'.join(terms)}",
             "切勿在公开场合与顾客争辩；请主管审核并更正回复。"]
    if clock is not None:
        lines.insert(0, f"原提及 {_clock_author(clock)}：{excerpt(clock.text)}")
    return title, "\n".join(lines)


def opened(inc: Incident, cfg: CrisisConfig, tz: tzinfo) -> tuple[str, str]:
    title = f"[{inc.severity}] {inc.brand} 危机事件开启（{inc.trigger}）"
    due = inc.opened_at + cfg.statement_due
    text = "\n".join([
        f"触发：{inc.detail}",
        f"事件 {inc.id}，开启于 {clock_time(inc.opened_at, tz)}",
        f"危机窗口 {format_duration(cfg.window[0])}–{format_duration(cfg.window[1])}："
        "立即通报团队，尽快发布官方声明（说自己的话、尽早说、说全）。",
        f"官方声明截止：{clock_time(due, tz)}",
    ])
    return title, text


def checkpoint(inc: Incident, offset: float, recent: int, cfg: CrisisConfig,
               tz: tzinfo) -> tuple[str, str]:
    label = format_duration(offset)
    title = f"[{inc.severity}] {inc.brand} 危机检查点 +{label}"
    stmt = (f"官方声明已于 {clock_time(inc.statement_at, tz)} 发布" if inc.statement_at
            else "尚无官方声明！")
    golden = "（黄金窗口内）" if offset <= cfg.window[0] else ""
    text = "\n".join([
        f"事件 {inc.id} 开启后 {label}{golden}：累计提及 {inc.mentions}，负面 {inc.negatives}",
        f"最近一小时负面 {recent} 条（基线 {inc.baseline_per_hour:.1f} 条/小时）",
        stmt,
    ])
    return title, text


def no_statement(inc: Incident, cfg: CrisisConfig, tz: tzinfo) -> tuple[str, str]:
    due = format_duration(cfg.statement_due)
    title = f"[{inc.severity}] {inc.brand} 危机升级：{due}内无官方声明"
    text = "\n".join([
        f"事件 {inc.id} 于 {clock_time(inc.opened_at, tz)} 开启，触发：{inc.detail}",
        "至今没有官方账号发布声明。请领导层立即决定并发布声明。",
    ])
    return title, text


def closed(inc: Incident, recent: int, tz: tzinfo) -> tuple[str, str]:
    title = f"{inc.brand} 危机事件关闭"
    stmt = clock_time(inc.statement_at, tz) if inc.statement_at else "无"
    text = "\n".join([
        f"事件 {inc.id}：{clock_time(inc.opened_at, tz)} 开启，"
        f"{clock_time(inc.closed_at or 0, tz)} 关闭",
        f"负面提及已回到基线（最近一小时 {recent} 条，基线 {inc.baseline_per_hour:.1f} 条/小时）",
        f"累计提及 {inc.mentions}，负面 {inc.negatives}；官方声明：{stmt}",
    ])
    return title, text
