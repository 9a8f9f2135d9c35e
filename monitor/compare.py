"""What-if: two rule sets on the same feed (``crisismon compare A B FEED...``).

Both configs replay the same feeds on the simulated clock into their own folders; the
comparison reads those folders back (``monitor.report``), so it is exactly what two real
replays would have paged. Alert ids are derived from what makes an alert unique (type,
post, incident, step), so "only in A" / "only in B" is a set difference of ids.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from monitor.config import Config
from monitor.report import Summary, _short, fmt_pct, fmt_seconds, load_summary


@dataclass(slots=True)
class Side:
    """One config's replay, summarised."""

    name: str
    summary: Summary
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    """Its ``deliveries.jsonl``: what its outbox did on each paging channel."""

    def pages(self) -> dict[str, Counter[str]]:
        """Per paging channel, how many delivery outcomes of each state: ``delivered``
        is a message sent (a page, a repeat, or one summary of held pages)."""
        out: dict[str, Counter[str]] = {}
        for d in self.deliveries:
            out.setdefault(d["channel"], Counter())[d["state"]] += 1
        return out


def load_deliveries(out_dir: Path) -> list[dict[str, Any]]:
    """A replay folder's ``deliveries.jsonl`` (empty: no paging channel configured)."""
    path = out_dir / "deliveries.jsonl"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


async def run_side(name: str, config: Config, feeds: list[Path], out_dir: Path) -> Side:
    """Replay ``feeds`` under ``config`` into ``out_dir`` (as fast as the CPU allows)."""
    from monitor.replay import replay

    await replay(config, feeds, out_dir)
    return Side(name, load_summary(out_dir, config), load_deliveries(out_dir))


def comparison(a: Side, b: Side) -> dict[str, Any]:
    """The differences as JSON-ready data (also written to ``compare.json``)."""
    ids_a = {x["id"]: x for x in a.summary.alerts}
    ids_b = {x["id"]: x for x in b.summary.alerts}
    types = sorted({x["type"] for x in [*ids_a.values(), *ids_b.values()]})
    count_a = Counter(x["type"] for x in ids_a.values())
    count_b = Counter(x["type"] for x in ids_b.values())

    def incidents(s: Side) -> list[dict[str, Any]]:
        return [{"brand": i.record["brand"], "trigger": i.record["trigger"],
                 "opened_at": i.record["opened_at"], "detection_seconds": i.detection_s,
                 "statement_seconds": i.statement_s, "closed_at": i.record["closed_at"]}
                for i in s.summary.incidents]

    return {
        "a": a.name, "b": b.name,
        "alerts": {"a": len(ids_a), "b": len(ids_b),
                   "only_a": sorted(set(ids_a) - set(ids_b)),
                   "only_b": sorted(set(ids_b) - set(ids_a))},
        "by_type": {t: {"a": count_a[t], "b": count_b[t]} for t in types},
        "pages": pages_per_channel(a, b),
        "sla_compliance": {"a": a.summary.compliance(), "b": b.summary.compliance()},
        "incidents": {"a": incidents(a), "b": incidents(b)},
    }


PAGE_STATES = ("delivered", "silenced", "deferred", "held", "summarised", "cancelled",
               "repeat")
"""The delivery outcomes ``compare`` counts per channel (``deliveries.jsonl`` states)."""


def pages_per_channel(a: Side, b: Side) -> dict[str, dict[str, dict[str, int]]]:
    """Per paging channel of either config: per state, how many in A and in B.
    ``delivered`` is the pages the channel would have received (summaries as one)."""
    pa, pb = a.pages(), b.pages()
    out: dict[str, dict[str, dict[str, int]]] = {}
    for channel in sorted({*pa, *pb}):
        ca, cb = pa.get(channel, Counter()), pb.get(channel, Counter())
        states = [st for st in PAGE_STATES if ca[st] or cb[st]]
        states += sorted({*ca, *cb} - set(PAGE_STATES))
        out[channel] = {st: {"a": ca[st], "b": cb[st]} for st in states}
    return out


def print_comparison(a: Side, b: Side, file: TextIO | None = None) -> dict[str, Any]:
    """Rich tables of what each config would have sent; returns ``comparison``."""
    from rich.console import Console
    from rich.table import Table

    data = comparison(a, b)
    # Piped or in a narrow window rich would cut the incident table's columns to fit 80
    # characters ("可口 …"); it is 100 wide, so lines wrap rather than lose text.
    console = Console(file=file, highlight=False)
    console.width = max(console.width, 104)
    t = Table(title="Alerts each config would have sent")
    t.add_column("type")
    t.add_column(f"A {a.name}", justify="right")
    t.add_column(f"B {b.name}", justify="right")
    t.add_column("B − A", justify="right")
    for typ, n in data["by_type"].items():
        t.add_row(typ, str(n["a"]), str(n["b"]), f"{n['b'] - n['a']:+d}")
    al = data["alerts"]
    t.add_row("[bold]all[/bold]", str(al["a"]), str(al["b"]), f"{al['b'] - al['a']:+d}")
    t.add_row("only in this config", str(len(al["only_a"])), str(len(al["only_b"])), "")
    console.print(t)
    if data["pages"]:
        pg = Table(title="Pages per channel (delivered: messages the channel would have "
                         "received)")
        for col in ("channel", "outcome"):
            pg.add_column(col)
        pg.add_column(f"A {a.name}", justify="right")
        pg.add_column(f"B {b.name}", justify="right")
        pg.add_column("B − A", justify="right")
        for channel, states in data["pages"].items():
            for st, n in states.items():
                pg.add_row(channel, st, str(n["a"]), str(n["b"]), f"{n['b'] - n['a']:+d}")
        console.print(pg)
    s = Table(title="5-minute rule")
    s.add_column("")
    s.add_column(f"A {a.name}", justify="right")
    s.add_column(f"B {b.name}", justify="right")
    s.add_row("replied in time", fmt_pct(a.summary.compliance()),
              fmt_pct(b.summary.compliance()))
    s.add_row("breaches", str(a.summary.breaches), str(b.summary.breaches))
    console.print(s)
    inc = Table(title="Incidents: when each config would have detected them")
    for col in ("config", "brand", "trigger", "opened", "to detect", "to statement", "closed"):
        inc.add_column(col, no_wrap=True)
    for tag, side in (("A", a), ("B", b)):
        for i in side.summary.incidents:
            r = i.record
            inc.add_row(tag, r["brand"], r["trigger"], _short(r["opened_at"]),
                        fmt_seconds(i.detection_s), fmt_seconds(i.statement_s),
                        _short(r["closed_at"]) if r["closed_at"] else "open")
        if not side.summary.incidents:
            inc.add_row(tag, "—", "", "", "", "", "")
    console.print(inc)
    for label, ids, alerts in (("A", al["only_a"], a.summary.alerts),
                               ("B", al["only_b"], b.summary.alerts)):
        by_id = {x["id"]: x for x in alerts}
        for x in sorted((by_id[aid] for aid in ids), key=lambda x: x["at"])[:10]:
            console.print(f"only {label}: {x['at'][:16]} {x['type']} {x['title']}")
        if len(ids) > 10:
            console.print(f"only {label}: ... and {len(ids) - 10} more (see compare.json)")
    return data


def write_comparison(data: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / "compare.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
