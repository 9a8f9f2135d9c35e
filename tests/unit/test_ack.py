"""Acks name an alert, a mention or an incident; a repeat's id names the alert it repeats."""

from __future__ import annotations

import json

import pytest

from alerts.ack import base_alert_id, repeat_id
from monitor.normalise import BadInput, parse_action
from monitor.sources.commands import parse_command


@pytest.mark.parametrize(("given", "expected"), [
    ("a-1f2e3d4c5b6a7980-r2", "a-1f2e3d4c5b6a7980"),
    ("a-1f2e3d4c5b6a7980", "a-1f2e3d4c5b6a7980"),
    ("4963187263", "4963187263"),            # a mention (post id)
    ("inc-快书包-20260520-r2", "inc-快书包-20260520-r2"),  # not an alert id
])
def test_base_alert_id(given: str, expected: str) -> None:
    assert base_alert_id(given) == expected


def test_repeat_id_round_trips() -> None:
    assert repeat_id("a-00ff", 0) == "a-00ff" and base_alert_id(repeat_id("a-00ff", 3)) == "a-00ff"


def test_an_mqtt_command_acking_a_repeat_acks_its_alert() -> None:
    """A responder copies the id from the reminder in front of them: a-…-r2."""
    payload = json.dumps({"action": "ack", "target": " a-1f2e3d4c5b6a7980-r2 ", "by": "小王"})
    action = parse_command(payload.encode(), 100.0)
    assert (action.target, action.by, action.source) == ("a-1f2e3d4c5b6a7980", "小王", "mqtt")
    with pytest.raises(BadInput, match="target"):
        parse_command(b'{"action": "ack", "target": " "}', 100.0)


def test_an_action_id_is_derived_from_the_request_so_a_retry_is_the_same_action() -> None:
    ack = {"action": "ack", "target": "a-1f2e3d4c5b6a7980", "by": "小王"}
    first = parse_action(ack, "api", now=100.0)
    assert parse_action(ack, "api", now=160.0).id == first.id  # a retry a minute later
    assert parse_command(json.dumps(ack).encode(), 130.0).id == first.id  # same, over MQTT
    # A repeat's id names its alert: acking the reminder is acking the page.
    assert parse_action({**ack, "target": "a-1f2e3d4c5b6a7980-r2"}, "api", now=1.0).id == first.id
    others = {parse_action({**ack, "by": "老陈"}, "api", now=100.0).id,
              parse_action(ack, "api", now=100.0, key="k1").id,
              parse_action({**ack, "id": "k2"}, "api", now=100.0).id,
              parse_action({**ack, "action": "resolve", "public": True}, "api", now=100.0).id,
              parse_action({**ack, "action": "resolve", "public": False}, "api", now=100.0).id}
    assert len(others) == 5 and first.id not in others
    assert parse_action(ack, "api", now=1.0, key="k1").id == \
        parse_action(ack, "api", now=2.0, key="k1").id  # the key's retry too


def test_a_feed_action_carries_its_own_time_and_requests_happen_now() -> None:
    line = {"action": "resolve", "target": "42", "by": "王", "public": False,
            "created_at": "2011-05-31T17:50:00+08:00"}
    a = parse_action(line, "feed")
    assert a.created_at == 1306835400.0 and a.public is False
    later = parse_action({**line, "created_at": "2011-05-31T17:51:00+08:00"}, "feed")
    assert later.id != a.id  # a feed records two moves at two times
    assert parse_action(line, "api", now=5.0).created_at == 5.0  # a request's time is now
    with pytest.raises(BadInput, match="created_at"):
        parse_action({k: v for k, v in line.items() if k != "created_at"}, "feed")


@pytest.mark.parametrize(("obj", "reason"), [
    ({"action": "delete", "target": "1"}, 'is not "ack" or "resolve"'),
    ({"action": "ack"}, "target"),
    ({"action": "ack", "target": "1", "by": 7}, '"by" must be a name'),
    ({"action": "ack", "target": "1", "public": "yes"}, '"public" must be true or false'),
    ({"action": "resolve", "target": "1"}, 'needs "public"'),
    ({"action": "ack", "target": "1", "id": ["x"]}, "idempotency key"),
])
def test_a_bad_action_says_why(obj: dict[str, object], reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        parse_action(obj, "api", now=0.0)


def test_who_acts_defaults_per_source_and_a_signed_in_name_wins() -> None:
    ack = {"action": "ack", "target": "1"}
    assert parse_action(ack, "api", now=0.0, default_by="api").by == "api"
    assert parse_action({**ack, "by": " 小王 "}, "api", now=0.0).by == "小王"
    assert parse_action({**ack, "by": "小王"}, "api", now=0.0, by="老陈").by == "老陈"
    # An incident's resolve over the API may leave "public" out.
    assert parse_action({"action": "resolve", "target": "inc-1"}, "api", now=0.0,
                        needs_public=False).public is None
