"""``crisismon``: the command line (contract section 1).

Exit codes: 0 success, 2 bad usage or invalid config/input, 1 anything else. Every
error is one line saying what, where and how to fix it, never a bare traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from monitor.config import Config, ConfigError, load_config
from monitor.feed import feed_problem
from monitor.normalise import BadInput, normalise_text, parse_time
from monitor.paging_cli import PAGING_COMMANDS, add_paging_commands

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "config.toml"


class UsageError(Exception):
    """Bad arguments or input: exit 2 with this one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _config(path: str) -> Config:
    return load_config(path)


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{value!r} is not a number or "max"') from None
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return speed


def _until(value: str) -> float:
    try:
        return parse_time(value)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="crisismon", description="Pages the PR team before a complaint "
                "becomes a crisis.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="the daemon, in the foreground (systemd runs this)")
    run.add_argument("--config", default=DEFAULT_CONFIG)

    rp = sub.add_parser("replay", help="run recorded feeds on a simulated clock")
    rp.add_argument("feeds", nargs="+", metavar="FEED", type=Path)
    rp.add_argument("--config", default=DEFAULT_CONFIG)
    rp.add_argument("--speed", type=_speed, default=None,
                    help='simulated seconds per wall second, or "max" (default)')
    rp.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    rp.add_argument("--until", type=_until, default=None,
                    help="stop the clock at this time instead of running every deadline out")
    rp.add_argument("--quiet", action="store_true", help="don't print alerts as they fall due")

    cc = sub.add_parser("check-config", help="validate the config; exit 2 if invalid")
    cc.add_argument("--config", default=DEFAULT_CONFIG)

    sc = sub.add_parser("score", help="score texts (no state, no alerts)")
    sc.add_argument("--config", default=DEFAULT_CONFIG)
    sc.add_argument("--jsonl", action="store_true",
                    help="read JSON lines with a text field on stdin")
    sc.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                    help="processes scoring a large --jsonl input (default 2: both cores)")
    sc.add_argument("texts", nargs="*", metavar="TEXT")

    from monitor import weibo_sim

    ws = sub.add_parser("weibo-sim", help="serve a recorded feed as a Weibo-style API")
    weibo_sim.add_arguments(ws)

    rep = sub.add_parser("report", help="summarise a replay's output folder")
    rep.add_argument("dir", metavar="DIR", type=Path, help="a `crisismon replay --out` folder")
    rep.add_argument("--config", default=None,
                     help="the config it was replayed with (SLA, burst window); "
                     "default: the contract's defaults")
    rep.add_argument("--json", action="store_true", help="print the figures as JSON")
    rep.add_argument("--html", action="store_true",
                     help="also (re)write report.html and the PNG plots into DIR")

    cmp = sub.add_parser("compare", help="what-if: two configs on the same feed")
    cmp.add_argument("config_a", metavar="CONFIG_A")
    cmp.add_argument("config_b", metavar="CONFIG_B")
    cmp.add_argument("feeds", nargs="+", metavar="FEED", type=Path)
    cmp.add_argument("--out", type=Path, default=None,
                     help="keep both replays in OUT/a and OUT/b, and OUT/compare.json")
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON")

    add_paging_commands(sub)  # ack, resolve, audit (monitor/paging_cli.py)

    from monitor import digest_cli

    dg = sub.add_parser("digest", help="print a scheduled digest, or send one now")
    digest_cli.add_arguments(dg, _until)

    tr = sub.add_parser("train-sentiment", help="retrain the Weibo sentiment model",
                        add_help=False)
    tr.add_argument("args", nargs=argparse.REMAINDER)
    return p


def cmd_check_config(args: argparse.Namespace) -> int:
    from monitor.preflight import load_checked

    # What run would refuse too: secrets, feed files, models, writable folders; all at once.
    config, notes = load_checked(args.config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    brands = ", ".join(b.name for b in config.brands)
    print(f"{args.config}: OK ({len(config.brands)} brands: {brands}; "
          f"{len(config.sources)} sources)")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from monitor.replay import replay
    from monitor.telemetry import configure_logging

    config = _config(args.config)
    configure_logging(config.log)
    for feed in args.feeds:
        if (problem := feed_problem(feed)) is not None:
            raise UsageError(problem)
    printer = None
    if not args.quiet:
        from alerts.channels.terminal import TerminalChannel

        printer = TerminalChannel("terminal", sys.stdout, tz=config.tz).write
    with _progress_bar(f"replay -> {args.out}") as progress:
        result = asyncio.run(replay(config, args.feeds, args.out, speed=args.speed,
                                    until=args.until, on_alert=printer, progress=progress))
    for bad in result.feed.bad[:20]:
        print(f"skipped {bad}", file=sys.stderr)
    if result.feed.skipped > 20:
        print(f"... and {result.feed.skipped - 20} more bad lines (see report.json)",
              file=sys.stderr)
    print(f"replayed {result.feed.events} events ({result.feed.skipped} bad lines skipped) "
          f"in {result.seconds:.2f}s: {len(result.alerts)} alerts -> {args.out}/alerts.jsonl",
          file=sys.stderr)
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from monitor.app import build_scorer
    from monitor.scorecmd import LineScorer, score_stream
    from rules.matching import BrandMatcher

    config = _config(args.config)
    lines = LineScorer(build_scorer(config), BrandMatcher(config.brands))
    out = sys.stdout.buffer
    if not args.jsonl:
        if not args.texts:
            raise UsageError("give TEXT arguments, or --jsonl with JSON lines on stdin")
        out.write(lines.texts([normalise_text(t) for t in args.texts]))
        out.flush()
        return EXIT_OK
    bad = score_stream(lines, sys.stdin.buffer, out, sys.stderr, fork=args.jobs > 1)
    return EXIT_USAGE if bad else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import run_daemon
    from monitor.preflight import load_checked
    from monitor.telemetry import configure_logging

    # Refuses with every problem at once, the list check-config prints; the scoring files
    # of a config that is otherwise fine are loaded (and checked) by the daemon itself.
    config, _notes = load_checked(args.config, models=False)
    configure_logging(config.log)
    return asyncio.run(run_daemon(config, config_path=args.config))


def cmd_train(args: argparse.Namespace) -> int:
    from rules.train_sentiment import main as train_main

    return train_main(list(args.args))


@contextlib.contextmanager
def _progress_bar(what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; None (no bar) otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.report import ReportError, load_summary, print_summary, write_report

    config = _config(args.config) if args.config else None
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: no such folder (give a `crisismon replay --out` folder)")
    try:
        summary = load_summary(args.dir, config)
        if args.html:
            print(f"wrote {write_report(args.dir, config)}", file=sys.stderr)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    else:
        print_summary(summary)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    import tempfile

    from monitor.compare import Side, comparison, print_comparison, run_side, write_comparison
    from monitor.telemetry import configure_logging

    config_a, config_b = _config(args.config_a), _config(args.config_b)
    configure_logging(config_a.log)
    for feed in args.feeds:
        if (problem := feed_problem(feed)) is not None:
            raise UsageError(problem)
    with tempfile.TemporaryDirectory(prefix="crisismon-compare-") as tmp:
        out = args.out or Path(tmp)

        async def both() -> tuple[Side, Side]:
            a = await run_side(Path(args.config_a).stem, config_a, args.feeds, out / "a")
            b = await run_side(Path(args.config_b).stem, config_b, args.feeds, out / "b")
            return a, b

        a, b = asyncio.run(both())
        if args.json:
            data = comparison(a, b)
            print(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            data = print_comparison(a, b)
        if args.out:
            print(f"wrote {write_comparison(data, out)}", file=sys.stderr)
    return EXIT_OK


def cmd_digest(args: argparse.Namespace) -> int:
    from monitor import digest_cli

    try:
        return digest_cli.run(_config(args.config), args)
    except digest_cli.DigestUsageError as exc:
        raise UsageError(str(exc)) from None


def cmd_weibo_sim(args: argparse.Namespace) -> int:
    from monitor import weibo_sim

    return weibo_sim.run(args)


COMMANDS = {
    "run": cmd_run,
    "replay": cmd_replay,
    "check-config": cmd_check_config,
    "score": cmd_score,
    "train-sentiment": cmd_train,
    "report": cmd_report,
    "compare": cmd_compare,
    "weibo-sim": cmd_weibo_sim,
    "digest": cmd_digest,
    **PAGING_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crisismon`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train-sentiment"]:
        # argparse.REMAINDER loses options placed first (``-o OUT``): pass them on untouched.
        return cmd_train(argparse.Namespace(args=argv[1:]))
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"crisismon: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"crisismon: invalid config {exc.source or ''}".rstrip(), file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:
        print(f"crisismon: error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # the contract: one line, never a bare traceback
        if os.environ.get("CRISISMON_DEBUG"):
            raise
        print(f"crisismon: error: {type(exc).__name__}: {exc} "
              "(set CRISISMON_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
