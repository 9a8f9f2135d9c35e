"""PNG plots of a replay (matplotlib, Agg backend: no display needed).

Labels are Chinese when a CJK font is installed (Debian ``fonts-noto-cjk``), else
English: a missing font must never make a replay fail or draw boxes for characters.
Fonts are found through fontconfig (libfontconfig, as ``fc-list :lang=zh``) when
matplotlib's own font cache does not know them (it is written once, and predates a font
installed later); the cache is then rewritten. No matplotlib warning reaches the
terminal: they are counted and logged at debug level.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from rules.deadlines import in_time

if TYPE_CHECKING:
    from monitor.report import Summary

log = structlog.get_logger(__name__)

MAX_INCIDENT_PLOTS = 20
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Source Han Sans SC",
                "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN")

LABELS = {
    "mentions_title": ("每{bin}提及数（按情感）", "Mentions per {bin} by sentiment"),
    "hour": ("小时", "hour"), "day": ("天", "day"), "week": ("周", "week"),
    "negative": ("负面", "negative"), "neutral": ("中性", "neutral"),
    "positive": ("正面", "positive"), "count": ("条数", "count"),
    "reply_title": ("回复用时分布（{n} 条已回复，{u} 条未回复）",
                    "Reply times ({n} replied, {u} never replied)"),
    "minutes": ("分钟", "minutes"), "sla_line": ("{m} 分钟线", "{m}-minute line"),
    "sla_brand": ("各品牌按时回复率", "Replied in time, per brand"),
    "sla_hour": ("各小时按时回复率（提及发布时刻）", "Replied in time, per hour of day"),
    "share": ("达标率 %", "in time %"),
    "inc_title": ("事件 {id} {brand}（{trigger}）", "Incident {id} {brand} ({trigger})"),
    "neg_hour": ("每小时负面提及", "negative mentions per hour"),
    "opened": ("开启", "opened"), "checkpoint": ("检查点", "checkpoint"),
    "statement_due": ("声明截止", "statement due"), "statement": ("声明发布", "statement"),
    "closed": ("关闭", "closed"), "window": ("12–24h 窗口", "12–24 h window"),
    "alerts": ("告警", "alerts"),
}


@cache
def cjk_font() -> str | None:
    """A CJK font family matplotlib can use, or None (then labels are English).

    Matplotlib's font list is read from its cache, built the first time it ran: a font
    installed since is unknown to it. Then fontconfig is asked for the fonts covering
    Chinese, they are added, and the cache is rewritten for the next run."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    found = _pick({f.name for f in manager.ttflist})
    if found is not None:
        return found
    added: list[str] = []
    for path in fontconfig_cjk_files():
        before = len(manager.ttflist)
        with contextlib.suppress(Exception), quiet():  # an unreadable font file: skip it
            manager.addfont(path)
        added += [f.name for f in manager.ttflist[before:]]
    if not added:
        return None
    _save_font_cache(manager)
    found = _pick(set(added))
    log.info("CJK font found through fontconfig; matplotlib's font cache rebuilt",
             family=found or added[0])
    return found or added[0]


def _pick(names: set[str]) -> str | None:
    return next((family for family in CJK_FAMILIES if family in names), None)


def fontconfig_cjk_files() -> list[str]:
    """Font files covering Chinese, as fontconfig lists them (``fc-list :lang=zh``),
    its best match for Chinese sans-serif (``fc-match sans-serif:lang=zh-cn``) first.

    Asked through libfontconfig itself (ctypes), not by running ``fc-list``: no product
    module starts a process. Empty without fontconfig."""
    try:
        return _fontconfig_files()
    except (OSError, AttributeError, ValueError) as exc:  # an odd libfontconfig: no fonts
        log.debug("fontconfig not usable", error=str(exc))
        return []


class _FcFontSet(ctypes.Structure):
    _fields_ = [("nfont", ctypes.c_int), ("sfont", ctypes.c_int),
                ("fonts", ctypes.POINTER(ctypes.c_void_p))]


def _fontconfig_files() -> list[str]:
    name = ctypes.util.find_library("fontconfig")
    if name is None:
        return []
    fc = ctypes.CDLL(name)
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    for fn, res, args in (("FcInitLoadConfigAndFonts", vp, []), ("FcNameParse", vp, [cp]),
                          ("FcObjectSetCreate", vp, []), ("FcObjectSetAdd", ctypes.c_int,
                                                          [vp, cp]),
                          ("FcFontList", ctypes.POINTER(_FcFontSet), [vp, vp, vp]),
                          ("FcPatternGetString", ctypes.c_int,
                           [vp, cp, ctypes.c_int, ctypes.POINTER(cp)]),
                          ("FcConfigSubstitute", ctypes.c_int, [vp, vp, ctypes.c_int]),
                          ("FcDefaultSubstitute", None, [vp]),
                          ("FcFontMatch", vp, [vp, vp, ctypes.POINTER(ctypes.c_int)]),
                          ("FcFontSetDestroy", None, [ctypes.POINTER(_FcFontSet)]),
                          ("FcObjectSetDestroy", None, [vp]), ("FcPatternDestroy", None, [vp]),
                          ("FcConfigDestroy", None, [vp])):
        getattr(fc, fn).restype = res
        getattr(fc, fn).argtypes = args

    def file_of(pattern: int | None) -> str | None:
        out = cp()
        if pattern and fc.FcPatternGetString(pattern, b"file", 0, ctypes.byref(out)) == 0 \
                and out.value:
            return out.value.decode(errors="replace")
        return None

    config = fc.FcInitLoadConfigAndFonts()
    if not config:
        return []
    try:
        query, objects = fc.FcNameParse(b":lang=zh"), fc.FcObjectSetCreate()
        fc.FcObjectSetAdd(objects, b"file")
        found = fc.FcFontList(config, query, objects)
        listed = [f for i in range(found.contents.nfont if found else 0)
                  if (f := file_of(found.contents.fonts[i])) is not None]
        if found:
            fc.FcFontSetDestroy(found)
        fc.FcObjectSetDestroy(objects)
        fc.FcPatternDestroy(query)
        wanted = fc.FcNameParse(b"sans-serif:lang=zh-cn")
        fc.FcConfigSubstitute(config, wanted, 0)  # FcMatchPattern
        fc.FcDefaultSubstitute(wanted)
        result = ctypes.c_int()
        match = fc.FcFontMatch(config, wanted, ctypes.byref(result))
        best = file_of(match)
        if match:
            fc.FcPatternDestroy(match)
        fc.FcPatternDestroy(wanted)
    finally:
        fc.FcConfigDestroy(config)
    # fc-match answers with its best font even when none covers Chinese (DejaVu): it
    # only leads when fontconfig lists it for :lang=zh too.
    first = [best] if best in listed else []
    files = first + sorted(f for f in set(listed) if f not in first)
    return [f for f in files if f.lower().endswith((".ttf", ".otf", ".ttc"))]


def _save_font_cache(manager: Any) -> None:
    """Rewrite matplotlib's font cache with the fonts just added (best effort)."""
    import matplotlib
    from matplotlib import font_manager

    try:
        path = os.path.join(matplotlib.get_cachedir(),
                            f"fontlist-v{font_manager.FontManager.__version__}.json")
        font_manager.json_dump(manager, path)
    except Exception as exc:  # a read-only cache folder: found again next run, no harm
        log.debug("could not rewrite matplotlib's font cache", error=str(exc))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Matplotlib's warnings (a glyph missing from a font, ``findfont`` misses) kept off
    the terminal: counted and logged at debug level."""
    mpl_log = logging.getLogger("matplotlib")
    level = mpl_log.level
    mpl_log.setLevel(logging.ERROR)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            mpl_log.setLevel(level)
    if caught:
        log.debug("matplotlib warnings", count=len(caught), first=str(caught[0].message))


def label(key: str, **kw: Any) -> str:
    zh, en = LABELS[key]
    return (zh if cjk_font() else en).format(**kw)


def warm_up() -> None:
    """Import matplotlib and find the font now, so a later ``write_plots`` does not wait
    for them (the replay calls it in its report process while the feed is replayed).

    For a process that draws and never shows matplotlib's help: while matplotlib is
    imported, each artist class's ``set()`` gets a short docstring instead of the table of
    its properties that ``matplotlib.artist.kwdoc`` builds from every setter's docstring
    (~40 % of the import's CPU, ~0.15 s). Drawing never reads those docstrings; ``kwdoc``
    itself is put back once the import is done."""
    import matplotlib.artist as artist

    kwdoc = artist.kwdoc
    artist.kwdoc = _no_kwdoc
    try:
        setup()
    finally:
        artist.kwdoc = kwdoc


def _no_kwdoc(artist: Any) -> str:
    return "Properties: see the artist's ``set_*`` methods."


def setup() -> None:
    """Matplotlib's figures and Agg canvas imported, fonts set (CJK first when there is
    one).

    Not ``matplotlib.pyplot``: the plots are drawn on ``Figure`` objects of their own
    (``_figure``), as matplotlib documents for servers: pyplot's import (with its style
    library, read from disk) took ~0.03 s more of the report process's warm-up, and its
    figure manager's work a little more per plot."""
    with quiet():
        _setup()


def _setup() -> None:
    import matplotlib
    import matplotlib.figure  # (imported now: see ``warm_up``)
    from matplotlib.backends import backend_agg  # noqa: F401

    font = cjk_font()
    matplotlib.rcParams["font.family"] = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = False
    matplotlib.rcParams["figure.dpi"] = 100


def _figure(figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """A figure of ``figsize`` inches on an Agg canvas, and its axes (``Figure.subplots``
    arguments)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def _local(iso: str) -> datetime:
    """Keep the replay's own offset (the configured zone's), so hours are local hours."""
    return datetime.fromisoformat(iso)


def _bin(span_s: float) -> tuple[str, float]:
    """Bar width for a span: hours up to 3 days, days up to 120 days, else weeks."""
    if span_s <= 3 * 86400:
        return "hour", 3600.0
    if span_s <= 120 * 86400:
        return "day", 86400.0
    return "week", 7 * 86400.0


def _sentiment_class(m: dict[str, Any]) -> str:
    if m["negative"]:
        return "negative"
    return "positive" if m["sentiment"] >= 0.6 else "neutral"


PNG_OPTIONS = {"compress_level": 1}
"""zlib's fastest level for the PNGs: 7 % larger files (257 -> 276 KB for the six plots of
the mention-heavy day), ~10 ms less a plot (~7 % of drawing it) at the replay's end,
where the replay waits for them."""

COLORS = {"negative": "#dc2626", "neutral": "#9ca3af", "positive": "#16a34a"}


def _fixed_layout(fig: Any, left: float = 0.07, right: float = 0.98, bottom: float = 0.12,
                  top: float = 0.91, wspace: float | None = None) -> None:
    """Margins set once per kind of figure, not measured per figure: ``tight_layout``
    drew every figure twice (once to measure its labels), ~30 % of the report's plotting
    time. The figures' sizes and the labels' lengths are fixed, so are their margins."""
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top, wspace=wspace)


class MentionBins(NamedTuple):
    """The mentions plot's bars."""

    unit: str
    """``hour``, ``day`` or ``week`` (``_bin``)."""
    width: float
    """A bin's seconds."""
    start: datetime
    """The first bin's local start."""
    counts: dict[str, Counter[int]]
    """Per sentiment class, the mentions in each bin (by index)."""


def mention_bins(summary: Summary) -> MentionBins | None:
    """The mentions plot's bars; None without mentions.

    Binned by epoch seconds (``Summary.posted``, parsed once), not by datetimes: the same
    bins (a difference of aware datetimes is one of instants), ~35 ms less on the
    mention-heavy day. Only the first mention's time is a datetime: its own offset gives
    the bins' local start."""
    posted = summary.posted
    if not posted:
        return None
    first = min(range(len(posted)), key=posted.__getitem__)
    unit, width = _bin(max(posted) - posted[first])
    start = _local(summary.mentions[first]["created_at"]).replace(minute=0, second=0,
                                                                 microsecond=0)
    if unit != "hour":
        start = start.replace(hour=0)
    start_s = start.timestamp()
    counts: dict[str, Counter[int]] = {k: Counter() for k in COLORS}
    for m, t in zip(summary.mentions, posted, strict=True):
        counts[_sentiment_class(m)][int((t - start_s) // width)] += 1
    return MentionBins(unit, width, start, counts)


def plot_mentions(summary: Summary, path: Path) -> None:
    """Stacked bars of mentions per hour (or day/week for long spans), by sentiment."""
    bins = mention_bins(summary)
    fig, ax = _figure((10, 4))
    if bins is not None:
        unit, width, start, counts = bins
        n = 1 + max(max(c, default=0) for c in counts.values())
        xs = [start + timedelta(seconds=i * width) for i in range(n)]
        bottom = [0] * n
        for cls, color in COLORS.items():
            ys = [counts[cls][i] for i in range(n)]
            ax.bar(xs, ys, width=timedelta(seconds=width * 0.9), bottom=bottom, color=color,
                   label=label(cls), align="edge")
            bottom = [a + b for a, b in zip(bottom, ys, strict=True)]
        ax.set_title(label("mentions_title", bin=label(unit)))
        ax.legend()
        fig.autofmt_xdate()
    ax.set_ylabel(label("count"))
    _fixed_layout(fig, bottom=0.2)
    fig.savefig(path, pil_kwargs=PNG_OPTIONS)


def plot_reply_times(summary: Summary, path: Path) -> None:
    """Histogram of reply times in minutes, with the SLA as a red line."""
    minutes = [s / 60 for s in summary.reply_times]
    sla_m = summary.reply_within / 60
    unreplied = len(summary.needing) - len(minutes)
    fig, ax = _figure((8, 4))
    if minutes:
        top = max(max(minutes), sla_m * 2)
        bins = [i * top / 30 for i in range(31)]
        colors = ["#16a34a" if b < sla_m else "#dc2626" for b in bins[:-1]]
        *_, patches = ax.hist(minutes, bins=bins)
        for patch, color in zip(patches, colors, strict=True):
            patch.set_facecolor(color)
    ax.axvline(sla_m, color="#b91c1c", linestyle="--",
               label=label("sla_line", m=f"{sla_m:g}"))
    ax.set_title(label("reply_title", n=len(minutes), u=unreplied))
    ax.set_xlabel(label("minutes"))
    ax.set_ylabel(label("count"))
    ax.legend()
    _fixed_layout(fig, left=0.09, bottom=0.13)
    fig.savefig(path, pil_kwargs=PNG_OPTIONS)


def plot_sla(summary: Summary, path: Path) -> None:
    """Share of mentions replied in time, per brand and per local hour of day."""
    fig, (a1, a2) = _figure((11, 4), ncols=2, gridspec_kw={"width_ratios": [1, 2]})
    brands = summary.by_brand()
    names = list(brands)
    a1.bar(names, [100 * ok / n if n else 0 for n, ok in brands.values()], color="#2563eb")
    for i, (n, ok) in enumerate(brands.values()):
        a1.text(i, 2, f"{ok}/{n}", ha="center", color="white" if ok else "#1d2129",
                fontsize=9)
    a1.set_ylim(0, 100)
    a1.set_title(label("sla_brand"))
    a1.set_ylabel(label("share"))
    per_hour: dict[int, list[int]] = {h: [0, 0] for h in range(24)}
    for m in summary.needing:
        row = per_hour[int(m["created_at"][11:13])]  # local ISO time: its hour, unparsed
        row[0] += 1
        row[1] += in_time(m["reply_seconds"], summary.reply_within)
    hours = list(range(24))
    a2.bar(hours, [100 * ok / n if n else 0 for n, ok in per_hour.values()],
           color=["#2563eb" if per_hour[h][0] else "#e5e7eb" for h in hours])
    for h in hours:
        if per_hour[h][0]:
            a2.text(h, 2, str(per_hour[h][0]), ha="center", fontsize=7, color="#1d2129")
    a2.set_xticks(range(0, 24, 2))
    a2.set_ylim(0, 100)
    a2.set_title(label("sla_hour"))
    _fixed_layout(fig, left=0.07, bottom=0.09, wspace=0.12)
    fig.savefig(path, pil_kwargs=PNG_OPTIONS)


def plot_incident(summary: Summary, inc: dict[str, Any], path: Path) -> None:
    """One incident's window: negatives per hour, opening, checkpoints, statement, close."""
    tz = _local(inc["opened_at"]).tzinfo or UTC
    opened = _local(inc["opened_at"])
    window_end = _local(inc["window_end"]) if inc.get("window_end") else opened
    closed = _local(inc["closed_at"]) if inc.get("closed_at") else None
    start = opened - timedelta(hours=2)
    end = max(window_end, closed or window_end) + timedelta(hours=1)
    hours = math.ceil((end - start).total_seconds() / 3600)
    counts = [0] * hours
    start_s = start.timestamp()
    for t in summary.negative_times.get(inc["brand"], ()):
        i = int((t - start_s) // 3600)
        if 0 <= i < hours:
            counts[i] += 1
    fig, ax = _figure((11, 4))
    xs = [start + timedelta(hours=i) for i in range(hours)]
    ax.bar(xs, counts, width=timedelta(minutes=54), align="edge", color="#fca5a5",
           label=label("neg_hour"))
    w0 = opened + timedelta(hours=12)
    ax.axvspan(w0, window_end, color="#fde68a", alpha=0.4, label=label("window"))

    def mark(iso: str | None, color: str, key: str, style: str = "-") -> None:
        if iso:
            ax.axvline(_local(iso), color=color, linestyle=style, linewidth=2, label=label(key))

    for i, cp in enumerate(inc.get("checkpoints") or []):
        ax.axvline(_local(cp), color="#6b7280", linestyle=":",
                   label=label("checkpoint") if i == 0 else None)
    mark(inc["opened_at"], "#b91c1c", "opened")
    mark(inc.get("statement_due"), "#d97706", "statement_due", "--")
    mark(inc.get("statement_at"), "#15803d", "statement")
    mark(inc.get("closed_at"), "#111827", "closed", "-.")
    alerts = [_local(a["at"]) for a in summary.alerts if a.get("incident_id") == inc["id"]
              and a["type"].startswith("crisis.")]
    top = max([*counts, 1])
    if alerts:
        ax.plot(alerts, [top * 1.05] * len(alerts), "v", color="#7c3aed",
                label=label("alerts"))
    import matplotlib.dates as mdates

    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=tz))
    ax.set_ylim(0, top * 1.15)
    ax.set_title(label("inc_title", id=inc["id"], brand=inc["brand"], trigger=inc["trigger"]))
    ax.set_ylabel(label("count"))
    # Beside the plot, not on it: the window band and late bars sit at the upper right.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    fig.autofmt_xdate()
    _fixed_layout(fig, right=0.87, bottom=0.2)
    fig.savefig(path, pil_kwargs=PNG_OPTIONS)


def write_plots(summary: Summary, out_dir: Path, split: bool = False) -> list[Path]:
    """Every plot as a PNG in ``out_dir``; returns their paths in reading order.

    ``split``: draw them in three processes, this one and two forked copies of it (the
    replay's report process: matplotlib is imported and the records are in memory, so a
    copy starts at once); each group takes about as long on a 100,000-post day with three
    incidents. If a copy cannot be made or fails, its group is drawn here after all.
    """
    setup()
    if cjk_font() is None:
        log.warning("no CJK font found; plot labels in English (apt-get install "
                    "fonts-noto-cjk for Chinese)")
    paths = [out_dir / "mentions_per_hour.png", out_dir / "reply_times.png",
             out_dir / "sla_compliance.png"]
    for old in out_dir.glob("incident_*.png"):
        old.unlink()  # a rerun into the same folder must not keep a stale incident
    incidents = [(inc.record, out_dir / f"incident_{inc.record['id']}.png")
                 for inc in summary.incidents[:MAX_INCIDENT_PLOTS]]
    drawings: list[Callable[[], None]] = [
        functools.partial(plot_incident, summary, record, path) for record, path in incidents]
    groups: list[list[Callable[[], None]]] = [
        [functools.partial(plot_mentions, summary, paths[0]),
         functools.partial(plot_sla, summary, paths[2])],
        [functools.partial(plot_reply_times, summary, paths[1]), *drawings[0::2]],
        drawings[1::2],
    ]
    # Worked out once, here, before the copies are made: else each copy would work them
    # out again, and copy the memory of every mention record it touched doing so.
    for cached in ("needing", "reply_times", "negative_times"):
        getattr(summary, cached)
    forked = [(_fork(functools.partial(_draw, group)) if split else None, group)
              for group in groups[1:] if group]
    _draw(groups[0])
    for pid, group in forked:
        if pid is None or os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
            _draw(group)
    return paths + [p for _, p in incidents]


def _draw(group: list[Callable[[], None]]) -> None:
    with quiet():
        for draw in group:
            draw()


def _fork(draw: Callable[[], None]) -> int | None:
    """``draw()`` in a forked copy of this process; its pid, or None (no fork).

    ``os.fork``, not ``monitor.workers``: the replay's report process is a daemonic
    ``multiprocessing`` process, which ``multiprocessing`` allows no children."""
    if not hasattr(os, "fork"):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the copy: draw, and leave without running the parent's exit handlers
        code = 1
        try:
            draw()
            code = 0
        finally:
            os._exit(code)
    return pid
