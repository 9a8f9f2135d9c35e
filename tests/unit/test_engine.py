"""The escalation engine on a simulated clock: exact due times, cancellations, late arrivals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rules.engine import EscalationEngine
from rules.policy import CrisisConfig
from rules.records import Alert, AlertType, PostKind
from tests.factories import (
    BRAND,
    OFFICIAL,
    T0,
    action,
    author,
    engine,
    mention,
    official_comment,
    post,
)

M = 60.0
H = 3600.0


def timeline(alerts: list[Alert]) -> list[tuple[str, float, int]]:
    """(type, seconds after T0, level) for each alert, in firing order."""
    return [(str(a.type), a.at - T0, a.level) for a in alerts]


def run(e: EscalationEngine, steps: list[tuple[float, object]], until: float) -> list[Alert]:
    """Feed (time, input) pairs like the pipeline does, then run the clock to ``until``."""
    out: list[Alert] = []
    for at, item in steps:
        out += e.advance(at, inclusive=False)
        out += item(at)  # type: ignore[operator]
    out += e.advance(until)
    return out


def test_unanswered_mention_climbs_the_whole_ladder_at_exact_seconds() -> None:
    e = engine()
    p = post(T0)
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(p), now))], T0 + 2 * H)
    assert timeline(alerts) == [
        ("mention.new", 0, 0),
        ("reply.warning", 3 * M, 0),
        ("reply.breach", 5 * M, 1),
        ("reply.escalated", 15 * M, 2),
    ]
    assert all(a.post_id == p.id and a.brand == BRAND for a in alerts)
    assert len({a.id for a in alerts}) == 4


@pytest.mark.parametrize(("reply_after", "expected"), [
    (2 * M, ["mention.new"]),
    (3 * M, ["mention.new"]),  # a reply exactly at a deadline is in time
    (4 * M, ["mention.new", "reply.warning"]),
    (5 * M, ["mention.new", "reply.warning"]),
    (5 * M + 1, ["mention.new", "reply.warning", "reply.breach"]),
    (20 * M, ["mention.new", "reply.warning", "reply.breach", "reply.escalated"]),
])
def test_a_public_official_reply_stops_the_clock(reply_after: float, expected: list[str]) -> None:
    e = engine()
    p = post(T0)
    r = official_comment(T0 + reply_after, on=p.id)
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(p), now)),
                     (r.created_at, lambda now: e.on_official(r, BRAND, (), now))], T0 + 2 * H)
    assert [str(a.type) for a in alerts] == expected
    assert e.clocks[f"{BRAND}\x1f{p.id}"].replied_at == r.created_at


def test_reply_to_a_comment_mention_via_reply_comment() -> None:
    e = engine()
    host = "9000"
    c = post(T0, kind=PostKind.COMMENT, on=host)
    r = official_comment(T0 + M, on=host, reply_to=c.id)
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(c), now)),
                     (r.created_at, lambda now: e.on_official(r, BRAND, (), now))], T0 + H)
    assert [str(a.type) for a in alerts] == ["mention.new"]


def test_official_repost_counts_as_a_reply() -> None:
    e = engine()
    p = post(T0)
    rp = post(T0 + 2 * M, "感谢反馈，我们马上处理", who=OFFICIAL, reposts=p.id)
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(p), now)),
                     (rp.created_at, lambda now: e.on_official(rp, BRAND, (), now))], T0 + H)
    assert [str(a.type) for a in alerts] == ["mention.new"]


def test_a_customer_comment_is_not_an_official_reply() -> None:
    e = engine()
    p = post(T0)
    # Nothing calls on_official for a non-official author; its comment changes nothing.
    other = post(T0 + M, "我也遇到了", kind=PostKind.COMMENT, on=p.id, who=author("77"))
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(p), now)),
                     (other.created_at, lambda now: e.on_reposts("none", 1, now, now))],
                 T0 + H)
    assert [str(a.type) for a in alerts][-1] == "reply.escalated"


def test_ack_stops_nothing_of_the_clock() -> None:
    e = engine()
    p = post(T0)
    alerts = run(e, [(T0, lambda now: e.on_mention(mention(p), now)),
                     (T0 + M, lambda now: e.on_action(action(now, "ack", p.id), now))], T0 + H)
    assert [str(a.type) for a in alerts] == ["mention.new", "reply.warning", "reply.breach",
                                             "reply.escalated"]
    assert "小王" in alerts[-1].text  # the page says who acknowledged it


def test_ack_by_alert_id_names_the_mention() -> None:
    e = engine()
    p = post(T0)
    first = e.on_mention(mention(p), T0)[0]
    # The caller holds the alert (the store); the engine reads its subject off it.
    assert e.subject_of(first) == f"{BRAND}\x1f{p.id}"
    e.on_action(action(T0 + 10, "ack", first.id), T0 + 10, e.subject_of(first))
    assert e.clocks[f"{BRAND}\x1f{p.id}"].acked_by == "小王"


def test_mention_arriving_after_its_deadlines_fires_them_at_once_with_due_times() -> None:
    e = engine()
    p = post(T0)
    seen = T0 + 7 * M  # fetched late
    alerts = e.on_mention(mention(p), seen) + e.advance(seen)
    assert timeline(alerts) == [("mention.new", 7 * M, 0), ("reply.warning", 3 * M, 0),
                                ("reply.breach", 5 * M, 1)]
    assert timeline(e.advance(T0 + H)) == [("reply.escalated", 15 * M, 2)]


def test_reply_seen_before_its_mention_still_counts() -> None:
    e = engine()
    p = post(T0)
    r = official_comment(T0 + M, on=p.id)
    e.on_official(r, BRAND, (), T0 + M)
    alerts = e.on_mention(mention(p), T0 + 2 * M) + e.advance(T0 + H)
    assert [str(a.type) for a in alerts] == ["mention.new"]


def test_pure_repost_needs_no_reply() -> None:
    e = engine()
    p = post(T0, "转发微博", reposts="123")
    alerts = e.on_mention(mention(p, needs_reply=False), T0) + e.advance(T0 + H)
    assert alerts == []
    assert e.stats.mentions == 1


def test_private_resolve_without_public_followup_alerts_after_30m() -> None:
    e = engine()
    p = post(T0)
    r = official_comment(T0 + M, on=p.id)
    steps = [(T0, lambda now: e.on_mention(mention(p), now)),
             (T0 + M, lambda now: e.on_official(r, BRAND, (), now)),
             (T0 + 10 * M, lambda now: e.on_action(action(now, "resolve", p.id, False), now))]
    alerts = run(e, steps, T0 + 2 * H)
    assert timeline(alerts) == [("mention.new", 0, 0), ("resolution.not_public", 40 * M, 1)]


def test_public_followup_after_private_resolve_cancels_the_alert() -> None:
    e = engine()
    p = post(T0)
    first = official_comment(T0 + M, on=p.id)
    follow = official_comment(T0 + 25 * M, on=p.id, text="已为您退款，感谢理解")
    steps = [(T0, lambda now: e.on_mention(mention(p), now)),
             (T0 + M, lambda now: e.on_official(first, BRAND, (), now)),
             (T0 + 10 * M, lambda now: e.on_action(action(now, "resolve", p.id, False), now)),
             (T0 + 25 * M, lambda now: e.on_official(follow, BRAND, (), now))]
    assert [str(a.type) for a in run(e, steps, T0 + 2 * H)] == ["mention.new"]


def test_public_resolve_ends_the_reply_clock() -> None:
    e = engine()
    p = post(T0)
    steps = [(T0, lambda now: e.on_mention(mention(p), now)),
             (T0 + 2 * M, lambda now: e.on_action(action(now, "resolve", p.id, True), now))]
    assert [str(a.type) for a in run(e, steps, T0 + H)] == ["mention.new"]


def test_arguing_official_reply_is_an_alert_to_the_supervisor() -> None:
    e = engine()
    p = post(T0)
    r = official_comment(T0 + M, on=p.id, text="请你搞清楚，不是我们的问题")
    steps = [(T0, lambda now: e.on_mention(mention(p), now)),
             (r.created_at, lambda now: e.on_official(r, BRAND, ("不是我们的问题",), now))]
    alerts = run(e, steps, T0 + H)
    assert timeline(alerts) == [("mention.new", 0, 0), ("reply.argument", M, 1)]
    assert alerts[1].post_id == p.id and "不是我们的问题" in alerts[1].text


# --------------------------------------------------------------------------- crisis
def negatives(e: EscalationEngine, start: float, count: int, every: float,
              **kw: object) -> list[Alert]:
    out: list[Alert] = []
    for i in range(count):
        t = start + i * every
        out += e.advance(t, inclusive=False)
        out += e.on_mention(mention(post(t), **kw), t)  # type: ignore[arg-type]
    return out


def crisis_only(alerts: list[Alert]) -> list[tuple[str, float, int]]:
    return [x for x in timeline(alerts) if x[0].startswith("crisis.")]


def test_burst_opens_one_incident_with_checkpoints_escalation_and_close() -> None:
    e = engine()
    alerts = negatives(e, T0, 10, 60)  # 10 negatives in 10 minutes, no history
    alerts += e.advance(T0 + 3 * 24 * H)
    opened_at = 5 * 60  # the 6th negative reaches burst_min_negatives
    assert crisis_only(alerts) == [
        ("crisis.opened", opened_at, 1),
        ("crisis.checkpoint", opened_at + H, 1),
        ("crisis.escalated", opened_at + H, 2),
        ("crisis.checkpoint", opened_at + 4 * H, 1),
        ("crisis.checkpoint", opened_at + 12 * H, 1),
        ("crisis.checkpoint", opened_at + 24 * H, 1),
        ("crisis.closed", opened_at + 24 * H, 0),
    ]
    assert len(e.incidents) == 1
    inc = next(iter(e.incidents.values()))
    assert inc.negatives == 10 and all(a.incident_id == inc.id for a in alerts
                                       if str(a.type).startswith("crisis."))


def test_an_incident_alert_names_its_incident_for_an_ack() -> None:
    e = engine()
    alerts = negatives(e, T0, 8, 60)  # the 6th opens it; the 7th and 8th fall inside
    opened = next(a for a in alerts if a.type is AlertType.CRISIS_OPENED)
    mention_page = next(a for a in alerts if a.type is AlertType.MENTION_NEW
                        and a.incident_id == opened.incident_id)
    assert e.subject_of(opened) == opened.incident_id
    # A mention's page carries the open incident too, but it is about the mention.
    assert e.subject_of(mention_page) == f"{BRAND}\x1f{mention_page.post_id}"
    e.on_action(action(T0 + H, "ack", opened.id), T0 + H, e.subject_of(opened))
    assert e.incidents[opened.incident_id].acked_by == "小王"  # type: ignore[index]
    assert e.clocks[f"{BRAND}\x1f{mention_page.post_id}"].acked_by is None


def test_official_statement_in_time_prevents_escalation() -> None:
    e = engine()
    alerts = negatives(e, T0, 6, 60)
    statement = post(T0 + 30 * M, "关于近日用户反映问题的说明", who=OFFICIAL)
    alerts += e.advance(statement.created_at, inclusive=False)
    alerts += e.on_official(statement, BRAND, (), statement.created_at)
    alerts += e.advance(T0 + 2 * H)
    assert "crisis.escalated" not in [str(a.type) for a in alerts]
    inc = next(iter(e.incidents.values()))
    assert inc.statement_at == statement.created_at


def test_incident_stays_open_past_the_window_while_negatives_continue() -> None:
    e = engine()
    alerts = negatives(e, T0, 6, 60)
    opened = T0 + 5 * 60
    # Still 5 negatives an hour around the 24 h mark.
    alerts += negatives(e, opened + 23 * H, 24, 12 * M)
    alerts += e.advance(opened + 7 * 24 * H)
    closed = [a for a in alerts if str(a.type) == "crisis.closed"]
    assert len(closed) == 1
    last_negative = opened + 23 * H + 23 * 12 * M
    assert closed[0].at > last_negative
    assert (closed[0].at - opened) % H == 0 and closed[0].at - opened > 24 * H
    assert len(e.incidents) == 1  # the hot tail attached to the same incident


def test_steady_day_of_ordinary_mentions_opens_no_incident() -> None:
    e = engine()
    alerts: list[Alert] = []
    # 24 h: a mention every 10 minutes, one in six negative (1/hour: the brand's normal).
    for i in range(144):
        t = T0 + i * 10 * M
        alerts += e.advance(t, inclusive=False)
        alerts += e.on_mention(mention(post(t), negative=(i % 6 == 0)), t)
    alerts += e.advance(T0 + 48 * H)
    assert e.incidents == {}
    assert crisis_only(alerts) == []


def test_burst_threshold_follows_the_brands_own_baseline() -> None:
    # A busy brand: 8 negatives an hour for a day is its normal; 8 in 30 minutes is not a crisis.
    e = engine()
    for i in range(24 * 8):
        t = T0 + i * 450
        e.advance(t, inclusive=False)
        e.on_mention(mention(post(t)), t)
    assert e.incidents == {}
    # ... but 40 in the next 30 minutes is.
    later = T0 + 24 * H
    alerts = negatives(e, later, 40, 45)
    assert [x[0] for x in crisis_only(alerts)] == ["crisis.opened"]


def test_one_harm_post_pages_as_a_mention_and_opens_only_when_corroborated() -> None:
    """Issue 17: one harm report is a mention (its page carries its severity); an
    incident needs corroboration: here an influential author (more in test_crisis.py)."""
    e = engine()
    alone = e.on_mention(mention(post(T0, "喝了快书包的饮料中毒了"), danger=True,
                                 severity="P1"), T0)
    assert [(str(a.type), a.severity) for a in alone] == [("mention.new", "P1")]
    big = author("9", followers=500_000, verified=True)
    alerts = e.on_mention(mention(post(T0 + 60, "喝了快书包的饮料中毒了", who=big),
                                  danger=True), T0 + 60)
    assert crisis_only(alerts) == [("crisis.opened", 60, 2)]
    assert alerts[-1].severity == "P1"


def test_influential_negative_post_spreading_fast_opens_an_incident() -> None:
    e = engine()
    root = post(T0, who=author("9", followers=500_000, verified=True))
    alerts = e.on_mention(mention(root), T0)
    for i in range(40):
        t = T0 + (i + 1) * 60
        alerts += e.advance(t, inclusive=False)
        alerts += e.on_story_post(root.id, post(t, "转发微博", reposts=root.id), None, t)
    opened = crisis_only(alerts)
    assert opened == [("crisis.opened", 30 * 60, 2)]  # the 30th repost within the hour


def test_spread_incident_stays_open_while_its_post_still_spreads() -> None:
    """A real cascade (中电, 2013-12) closed at +24h while its post was still reposted 54
    times an hour, and a second incident for the same post opened 21 s later."""
    e = engine()
    root = post(T0, who=author("9", followers=1_000_000, verified=True))
    alerts = e.on_mention(mention(root), T0)
    for i in range(1, 1550):  # a repost a minute until 25h49m, then silence
        t = T0 + i * M
        alerts += e.advance(t, inclusive=False)
        alerts += e.on_story_post(root.id, post(t, "转发微博", reposts=root.id), None, t)
    alerts += e.advance(T0 + 72 * H)
    crisis = [(kind, at) for kind, at, _level in crisis_only(alerts)
              if kind in ("crisis.opened", "crisis.closed")]
    # Opened at the 30th repost. At the window's end (+24h: 24h30m) and at the hourly
    # re-check (25h30m) the post is still reposted 60 times an hour, so it stays open; at
    # 26h30m the last hour held 20 reposts (< 30) and no negatives: closed, once.
    assert crisis == [("crisis.opened", 30 * M), ("crisis.closed", 26 * H + 30 * M)]
    # A second wave of the same post two days on is the same story: no new incident.
    wave: list[Alert] = []
    for i in range(60):
        t = T0 + 72 * H + i * M
        wave += e.advance(t, inclusive=False)
        wave += e.on_story_post(root.id, post(t, "转发微博", reposts=root.id), None, t)
    assert crisis_only(wave) == []
    assert "crisis" not in str([a.type for a in e.advance(T0 + 100 * H)])


def test_ordinary_author_needs_a_viral_spread() -> None:
    cfg = replace(CrisisConfig(), viral_min_reposts=100)
    e = engine(crisis=cfg)
    root = post(T0, who=author("9", followers=300))
    alerts = e.on_mention(mention(root), T0)
    for i in range(99):
        alerts += e.on_story_post(root.id, post(T0 + i, "转发微博", reposts=root.id), None,
                                  T0 + i)
    assert crisis_only(alerts) == []
    alerts += e.on_counts(root.id, 5, T0 + 200)  # counter growth counts as spread too
    assert crisis_only(alerts) == [("crisis.opened", 200, 1)]


def test_same_input_same_alerts() -> None:
    def once() -> list[str]:
        e = engine()
        alerts: list[Alert] = []
        for i in range(12):
            t = T0 + i * 40
            alerts += e.advance(t, inclusive=False)
            alerts += e.on_mention(mention(post(t, pid=f"p{i}")), t)
        alerts += e.advance(T0 + 30 * H)
        return [a.to_json() for a in alerts]

    assert once() == once()


def test_changed_mentions_come_out_in_the_order_they_changed() -> None:
    """The store writes the projections in this order: it must not depend on where the
    clocks sit in memory (nor on the hash seed), or ``state.db`` differs run to run."""
    e = engine()
    posts = [post(T0 + i, pid=str(5000 + i)) for i in range(6)]
    for p in posts:
        e.on_mention(mention(p), p.created_at)
    assert [c.post_id for c in e.dirty_mentions] == [p.id for p in posts]
    e.dirty_mentions.clear()
    # Answered last to first: the order of the changes, not of the clocks' creation.
    for p in reversed(posts):
        r = official_comment(T0 + M, on=p.id)
        e.on_official(r, BRAND, (), r.created_at)
    assert [c.post_id for c in e.dirty_mentions] == [p.id for p in reversed(posts)]


@pytest.mark.parametrize(("brand", "post_id"), [
    (BRAND, "4900000000040509"), ("小满咖啡", "p1"), ("a\x1fb", ""), ("", "x\x1fy"),
    ("Café ☕", "💥" * 3)])
def test_a_mention_pages_id_is_the_hash_of_its_parts(brand: str, post_id: str) -> None:
    """``mention_alert_id`` copies a hash of the first parts: the id is still
    ``alert_id`` of the three, for every kind of page, asked again or not."""
    from rules.records import alert_id, mention_alert_id

    for kind in AlertType:
        for _ in range(2):
            assert mention_alert_id(kind, brand, post_id) == alert_id(kind, brand, post_id)


def test_a_bad_post_while_an_incident_is_open_counts_there_and_keeps_its_harm() -> None:
    """While the brand's incident is open no story can open another, so none is made for
    a new negative post: it still counts in the incident and the brand's history, and a
    harm report still marks its clock (its story, if it is reposted later, is a harm
    story)."""
    from rules.engine import _DANGER

    e = engine()
    negatives(e, T0, 6, 60)  # the 6th opens a burst incident
    inc = next(iter(e.incidents.values()))
    before = (inc.mentions, inc.negatives, e.activity[BRAND].danger.count(T0, T0 + H))
    t = T0 + 10 * M
    e.on_mention(mention(post(t, pid="harm-1", text="快书包的外卖吃了中毒送医"), danger=True), t)
    assert (inc.mentions, inc.negatives) == (before[0] + 1, before[1] + 1)
    assert e.activity[BRAND].danger.count(T0, T0 + H) == before[2] + 1
    assert e.clocks[f"{BRAND}\x1fharm-1"].flags & _DANGER
    story = e._stories_of("harm-1")[0]  # made from the clock when first reposted
    assert story.harm == 1 and story.incident_id is None
