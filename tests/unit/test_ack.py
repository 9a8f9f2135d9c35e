"""Acks name an alert, a mention or an incident; a repeat's id names the alert it repeats."""

from __future__ import annotations

import json

import pytest

from alerts.ack import base_alert_id, repeat_id
from monitor.sources.commands import BadCommand, parse_command


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
    with pytest.raises(BadCommand, match="target"):
        parse_command(b'{"action": "ack", "target": " "}', 100.0)
