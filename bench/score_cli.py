"""``crisismon score --jsonl`` end to end: ``python bench/score_cli.py [--lines N] [--passes P]``.

Workload: every text of the sentiment test and dev sets (weibo_senti_100k test, SMP2020-EWECT
human_test and human3_dev, waimai_10k test: 9,176 posts, median ~40 characters), one in three
prefixed with a configured brand name so brand matching, the crisis lexicon and severity run on
real mentions too, repeated to ``--lines`` JSON lines. The command runs as a user runs it: a
subprocess reading JSON lines on stdin and writing one JSON line per input line on stdout.

Start-up (Python, imports, the model and jieba dictionary) is excluded by timing the same
command on one line and subtracting: texts/s = (N - 1) / (t(N lines) - t(1 line)). Best of
``--passes`` runs (the machine is shared: the load average is printed beside the figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_DIR.parent / "shared" / "data" / "sentiment"
SETS = ("test.jsonl", "human_test.jsonl", "human3_dev.jsonl", "waimai_10k_test.jsonl")
TARGET = 20_000
BRANDS = ("小满咖啡", "快书包")


def workload(data: Path, lines: int) -> bytes:
    """``lines`` JSON lines with a ``text`` field (see the module docstring)."""
    texts: list[str] = []
    for name in SETS:
        with (data / name).open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    out = []
    for i in range(lines):
        t = texts[i % len(texts)]
        if i % 3 == 0:
            t = f"{BRANDS[i % 2]} {t}"
        out.append(json.dumps({"id": i, "text": t}, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode("utf-8")


def run(stdin: bytes, config: Path) -> tuple[float, bytes]:
    """Wall time and stdout of one ``crisismon score --jsonl`` run."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "monitor.cli", "score", "--config", str(config),
                           "--jsonl"], input=stdin, capture_output=True, cwd=REPO_DIR,
                          check=True)
    return time.perf_counter() - t0, done.stdout


def main(argv: list[str] | None = None) -> int:
    """Print texts/s; exit 0 (the target is reported, not enforced)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--config", type=Path, default=REPO_DIR / "config.toml")
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args(argv)

    big = workload(args.data, args.lines)
    one = workload(args.data, 1)
    rates = []
    for _ in range(args.passes):
        t1, _out = run(one, args.config)
        tn, out = run(big, args.config)
        n_out = out.count(b"\n")
        if n_out != args.lines:
            print(f"expected {args.lines} output lines, got {n_out}", file=sys.stderr)
            return 1
        rates.append((args.lines - 1) / max(tn - t1, 1e-9))
        print(f"  pass: {args.lines:,} lines in {tn:.2f}s, start-up (1 line) {t1:.2f}s "
              f"-> {rates[-1]:,.0f} texts/s", flush=True)
    best = max(rates)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"crisismon score --jsonl, {args.lines:,} JSON lines in and out, start-up excluded: "
          f"{best:,.0f} texts/s (best of {len(rates)}: "
          f"{', '.join(f'{r:,.0f}' for r in rates)}; load average {load})")
    print(f"  {'PASS' if best >= TARGET else 'MISS'} {best:,.0f} >= {TARGET:,} texts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
