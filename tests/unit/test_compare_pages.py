"""``compare`` reports pages per channel from each side's deliveries.jsonl."""

from __future__ import annotations

from typing import Any

from monitor.compare import Side, pages_per_channel


def side(name: str, rows: list[tuple[str, str]]) -> Side:
    deliveries: list[dict[str, Any]] = [{"channel": c, "state": s, "alert_id": "a",
                                         "at": "x"} for c, s in rows]
    return Side(name, summary=None, deliveries=deliveries)  # type: ignore[arg-type]


def test_pages_per_channel_counts_each_state_of_both_sides() -> None:
    a = side("a", [("duty", "delivered")] * 3 + [("duty", "silenced"), ("ops", "held")])
    b = side("b", [("duty", "delivered")] * 5 + [("pager", "delivered")])
    pages = pages_per_channel(a, b)
    assert pages == {
        "duty": {"delivered": {"a": 3, "b": 5}, "silenced": {"a": 1, "b": 0}},
        "ops": {"held": {"a": 1, "b": 0}},
        "pager": {"delivered": {"a": 0, "b": 1}},
    }
