"""Analysts' reports from a replay's output folder (``crisismon report DIR``).

Everything is computed from the files a replay writes (``mentions.jsonl``,
``incidents.jsonl``, ``alerts.jsonl``, ``report.json``), so a report works on any
replay output, old or new, without the state database. ``write_report`` adds
``report.html`` (one self-contained file, plots embedded) and the PNG plots to the
folder; ``print_summary`` prints the terminal summary with rich tables.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec
import structlog

from alerts.digest import dur as fmt_seconds  # one duration format for reports and digests
from monitor.config import Config
from rules.deadlines import in_time

log = structlog.get_logger(__name__)

DEFAULT_REPLY_WITHIN = 300.0
DEFAULT_BURST_WINDOW = 1800.0


class ReportError(Exception):
    """The folder is not a replay output; the message says which file is missing."""


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path``; a missing file is an error a person can act on."""
    if not path.is_file():
        raise ReportError(f"{path}: missing (is {path.parent} a `crisismon replay --out` "
                          "folder?)")
    out = []
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = _loads(line)
            except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
                raise ReportError(f"{path}:{lineno}: not a JSON line ({_why(exc)}); the file "
                                  "is damaged: replay again into this folder") from None
            if not isinstance(rec, dict):
                raise ReportError(f"{path}:{lineno}: not a JSON object; the file is damaged: "
                                  "replay again into this folder")
            out.append(rec)
    return out


def _why(exc: Exception) -> str:
    return str(exc).split("\n")[0][:120]


def _loads(line: bytes) -> Any:
    """``json.loads``, ~3x faster by msgspec (same values); ``json`` for what only it
    reads (``NaN``)."""
    try:
        return msgspec.json.decode(line)
    except msgspec.DecodeError:
        # Decoded first: given bytes, json guesses UTF-16/32 from NUL bytes (a crash's
        # zero-filled tail) and blames a codec instead of the line.
        return json.loads(line.decode("utf-8"))


@dataclass(slots=True)
class IncidentSummary:
    """One incident with the two times analysts tune for."""

    record: dict[str, Any]
    detection_s: float | None
    """Opened minus when the story began: the trigger post for a ``danger`` or ``spread``
    incident; for a ``burst``, the first negative of the brand in the burst window."""
    statement_s: float | None
    """Official statement minus opened; None when no statement came."""


@dataclass
class Summary:
    """The figures of one replay, as printed by ``crisismon report``."""

    out_dir: Path
    reply_within: float
    mentions: list[dict[str, Any]]
    incidents: list[IncidentSummary]
    alerts: list[dict[str, Any]]
    run: dict[str, Any] = field(default_factory=dict)
    totals: tuple[int, int] | None = None
    """(alerts, ``reply.breach`` alerts) when ``alerts`` holds only the incidents' own
    (``crisis.*``) alerts, as the replay hands them to its report process: the others
    are counted, not sent (131,722 alerts on the mention-heavy day, against 21 drawn)."""

    # ``needing``, ``reply_times`` and ``in_time`` are worked out once (the summary's
    # records are not changed after it is made): the page, the tables and the plots
    # read them ~20 times, each a pass over every mention (33,666 on the mention-heavy
    # day; ~0.1 s of the report, after the plots).
    @functools.cached_property
    def needing(self) -> list[dict[str, Any]]:
        return [m for m in self.mentions if m["needs_reply"]]

    @functools.cached_property
    def reply_times(self) -> list[float]:
        return sorted(m["reply_seconds"] for m in self.needing
                      if m["reply_seconds"] is not None)

    @functools.cached_property
    def in_time(self) -> int:
        return sum(1 for s in self.reply_times if in_time(s, self.reply_within))

    @property
    def breaches(self) -> int:
        if self.totals is not None:
            return self.totals[1]
        return sum(1 for a in self.alerts if a["type"] == "reply.breach")

    @property
    def alert_count(self) -> int:
        return len(self.alerts) if self.totals is None else self.totals[0]

    def compliance(self) -> float | None:
        n = len(self.needing)
        return self.in_time / n if n else None

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of reply times, nearest rank; None if none replied."""
        times = self.reply_times
        if not times:
            return None
        return times[min(len(times) - 1, max(0, round(q * len(times) + 0.5) - 1))]

    def median(self) -> float | None:
        return statistics.median(self.reply_times) if self.reply_times else None

    def by_brand(self) -> dict[str, tuple[int, int]]:
        """Per brand: (mentions needing a reply, replied within the SLA)."""
        return dict(self._by_brand)

    @functools.cached_property
    def _by_brand(self) -> dict[str, tuple[int, int]]:
        # Once: the page, its figures and the SLA plot each asked (~25 ms a pass).
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for m in self.needing:
            row = out[m["brand"]]
            row[0] += 1
            row[1] += in_time(m["reply_seconds"], self.reply_within)
        return {b: (n, ok) for b, (n, ok) in sorted(out.items())}

    @functools.cached_property
    def posted(self) -> list[float]:
        """When each mention was posted (epoch seconds), in file order: its time parsed
        once, for the mentions plot and ``negative_times``."""
        return [datetime.fromisoformat(m["created_at"]).timestamp() for m in self.mentions]

    @functools.cached_property
    def negative_times(self) -> dict[str, list[float]]:
        """Per brand, when its negative mentions were posted (epoch seconds), in file
        order: each incident plot reads its brand's, instead of a pass over every mention
        parsing times (~25 ms an incident on the mention-heavy day)."""
        out: dict[str, list[float]] = defaultdict(list)
        for m, posted in zip(self.mentions, self.posted, strict=True):
            if m["negative"]:
                out[m["brand"]].append(posted)
        return dict(out)

    def as_dict(self) -> dict[str, Any]:
        """The summary's figures as JSON-ready data (``report --json``)."""
        return {
            "mentions": len(self.mentions), "needing_reply": len(self.needing),
            "replied_within_sla": self.in_time, "sla_compliance": self.compliance(),
            "reply_within_seconds": self.reply_within,
            "median_reply_seconds": self.median(), "p90_reply_seconds": self.percentile(0.9),
            "unreplied": len(self.needing) - len(self.reply_times), "breaches": self.breaches,
            "alerts": self.alert_count,
            "by_brand": {b: {"needing_reply": n, "in_time": ok}
                         for b, (n, ok) in self.by_brand().items()},
            "incidents": [{"id": i.record["id"], "brand": i.record["brand"],
                           "trigger": i.record["trigger"], "opened_at": i.record["opened_at"],
                           "detection_seconds": i.detection_s,
                           "statement_seconds": i.statement_s,
                           "closed_at": i.record["closed_at"]} for i in self.incidents],
        }


def detection_time(inc: dict[str, Any], mentions: list[dict[str, Any]],
                   burst_window: float) -> float | None:
    """How long the story ran before the incident opened (see ``IncidentSummary``)."""
    opened = _epoch(inc["opened_at"])
    if opened is None:
        return None
    starts = [opened]
    brand, trigger_id = inc["brand"], inc.get("trigger_post_id")
    burst = inc.get("trigger") == "burst"
    for m in mentions:
        if m["brand"] != brand:
            continue
        is_trigger = m["id"] == trigger_id
        if not (is_trigger or (burst and m["negative"])):
            continue  # decided without parsing the time (most mentions)
        t = _epoch(m["created_at"])
        if t is not None and (is_trigger or opened - burst_window <= t <= opened):
            starts.append(t)
    return max(0.0, opened - min(starts))


def load_summary(out_dir: Path, config: Config | None = None) -> Summary:
    """Read a replay folder; ``config`` gives the SLA and burst window (else defaults)."""
    mentions = read_jsonl(out_dir / "mentions.jsonl")
    alerts = read_jsonl(out_dir / "alerts.jsonl")
    incidents = read_jsonl(out_dir / "incidents.jsonl")
    run_path = out_dir / "report.json"
    try:
        run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportError(f"{run_path}: not valid JSON ({_why(exc)}); the file is damaged: "
                          "replay again into this folder") from None
    try:
        return summarise(out_dir, mentions, incidents, alerts, run, config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{out_dir}: a record lacks a field or has a wrong value ({exc!r}); "
                          "was it written by `crisismon replay`?") from None


def summarise(out_dir: Path, mentions: list[dict[str, Any]], incidents: list[dict[str, Any]],
              alerts: list[dict[str, Any]], run: dict[str, Any],
              config: Config | None = None, incident_alerts_only: bool = False) -> Summary:
    """A summary of records as the replay writes them (``load_summary`` reads them back;
    the replay hands over the ones it holds, instead of reading its own files again).
    ``incident_alerts_only``: ``alerts`` are only the ``crisis.*`` ones, and the totals
    are the run report's (``alerts``, ``alerts_by_type``; see ``Summary.totals``)."""
    reply_within = config.sla.reply_within if config else DEFAULT_REPLY_WITHIN
    burst = config.crisis.burst_window if config else DEFAULT_BURST_WINDOW
    summaries = []
    for rec in incidents:
        opened, st = _epoch(rec["opened_at"]), _epoch(rec.get("statement_at"))
        summaries.append(IncidentSummary(
            rec, detection_time(rec, mentions, burst),
            None if st is None or opened is None else st - opened))
    totals = None
    if incident_alerts_only:
        totals = (int(run["alerts"]), int(run["alerts_by_type"].get("reply.breach", 0)))
    return Summary(out_dir, float(reply_within), mentions, summaries, alerts, run, totals)


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _short(iso: str) -> str:
    """``2013-01-05T17:09:29+08:00`` -> ``13-01-05 17:09``."""
    return iso[2:16].replace("T", " ")


def print_summary(summary: Summary, file: TextIO | None = None) -> None:
    """The terminal summary: totals, per brand, incidents (rich tables)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, highlight=False)
    s = summary
    head = Table(title=f"crisismon replay report — {s.out_dir}", show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    rows = [
        ("mentions", str(len(s.mentions))),
        ("needing a reply", str(len(s.needing))),
        (f"replied within {fmt_seconds(s.reply_within)}",
         f"{s.in_time} ({fmt_pct(s.compliance())})"),
        ("median reply time", fmt_seconds(s.median())),
        ("p90 reply time", fmt_seconds(s.percentile(0.9))),
        ("never replied", str(len(s.needing) - len(s.reply_times))),
        ("breaches (reply.breach)", str(s.breaches)),
        ("alerts", str(s.alert_count)),
        ("incidents", str(len(s.incidents))),
    ]
    if s.run.get("clock_start"):
        rows.append(("simulated span", f"{s.run['clock_start']} → {s.run.get('clock_end')}"))
    for k, v in rows:
        head.add_row(k, v)
    console.print(head)

    brands = Table(title="SLA per brand")
    for col in ("brand", "needing reply", "in time", "compliance"):
        brands.add_column(col, justify="left" if col == "brand" else "right")
    for brand, (n, ok) in s.by_brand().items():
        brands.add_row(brand, str(n), str(ok), fmt_pct(ok / n if n else None))
    console.print(brands)

    inc = Table(title="Incidents (times in the replay's zone)")
    for col in ("brand", "trigger", "opened", "detection", "statement", "closed"):
        inc.add_column(col, no_wrap=True)
    for i in s.incidents:
        r = i.record
        inc.add_row(r["brand"], r["trigger"], _short(r["opened_at"]),
                    fmt_seconds(i.detection_s),
                    fmt_seconds(i.statement_s) if i.statement_s is not None else "none",
                    _short(r["closed_at"]) if r["closed_at"] else "open")
    if not s.incidents:
        inc.add_row("—", "", "", "", "", "")
    console.print(inc)


# ---------------------------------------------------------------------- HTML
CSS = """body{font:15px/1.5 system-ui,"Noto Sans CJK SC","PingFang SC",sans-serif;
margin:0 auto;max-width:1100px;padding:16px;color:#1d2129}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;
padding:4px 8px;text-align:left}th{background:#f3f4f6}td.n{text-align:right}
img{max-width:100%;border:1px solid #eee;margin:8px 0}.mute{color:#6b7280}"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    esc = html.escape
    out = ["<table><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(summary: Summary, plots: list[Path]) -> str:
    """One self-contained page: figures, tables and the plots as data: URIs."""
    s, esc = summary, html.escape
    d = s.as_dict()
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>crisismon 回放报告 — {esc(str(s.out_dir.name))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>回放报告 <span class='mute'>{esc(str(s.out_dir))}</span></h1>",
        _table(["指标", "数值"], [
            ["提及", str(d["mentions"])], ["需要回复", str(d["needing_reply"])],
            [f"{fmt_seconds(s.reply_within)} 内回复", f"{s.in_time} ({fmt_pct(s.compliance())})"],
            ["回复时间中位数", fmt_seconds(s.median())],
            ["回复时间 P90", fmt_seconds(s.percentile(0.9))],
            ["从未回复", str(d["unreplied"])], ["超时 (reply.breach)", str(s.breaches)],
            ["告警", str(s.alert_count)], ["危机事件", str(len(s.incidents))],
            ["模拟时间", f"{s.run.get('clock_start')} → {s.run.get('clock_end')}"],
        ]),
        "<h2>各品牌 5 分钟规则</h2>",
        _table(["品牌", "需要回复", "按时", "达标率"],
               [[b, str(n), str(ok), fmt_pct(ok / n if n else None)]
                for b, (n, ok) in s.by_brand().items()]),
        "<h2>危机事件</h2>",
        _table(["事件", "品牌", "触发", "严重度", "开启", "发现用时", "声明用时", "关闭", "说明"],
               [[i.record["id"], i.record["brand"], i.record["trigger"],
                 i.record["severity"], i.record["opened_at"], fmt_seconds(i.detection_s),
                 fmt_seconds(i.statement_s), i.record["closed_at"] or "进行中",
                 i.record.get("detail") or ""] for i in s.incidents]),
    ]
    for p in plots:
        data = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<h3>{esc(p.stem)}</h3><img alt='{esc(p.stem)}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(out_dir: Path, config: Config | None = None,
                 summary: Summary | None = None, split: bool = False) -> Path:
    """Write the PNG plots and ``report.html`` into a replay folder; returns the page.
    ``summary``: of the folder's files, when the caller holds it already; ``split``: draw
    the plots in three processes (``monitor.plots.write_plots``)."""
    from monitor.plots import write_plots

    if summary is None:
        summary = load_summary(out_dir, config)
    plots = write_plots(summary, out_dir, split)
    page = out_dir / "report.html"
    page.write_text(render_html(summary, plots), encoding="utf-8")
    return page
