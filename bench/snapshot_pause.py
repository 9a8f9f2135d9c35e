"""How long a periodic engine snapshot stops the live daemon's event loop.

    python bench/snapshot_pause.py [--mentions 100000] [--rounds 5] [--rate 1250]

The live firehose bench (``bench/live_latency.py``) shows a snapshot's pause only through
latencies that also move with the machine's load; this measures the pause itself, with
the real ``Daemon.snapshot_forked`` on a file-backed SQLite store (WAL, the checkpoint
thread as live):

- the engine holds ``--mentions`` open reply clocks (real Weibo texts from
  ``../shared/data/sentiment/train.jsonl``, read, never copied; three brands): 100,000 is
  the open state at the end of ``live_latency.py --rate 5000 --seconds 60``, a ~35 MB
  snapshot;
- while each snapshot runs, a task stands in for ingest: ``--rate`` new mentions a second
  go into the engine in batches of 10 ms, so the parent writes to memory it shares with
  the forked child (copy-on-write) as it would live;
- per snapshot: what the loop waited for (``loop_blocked``: fix + fork + record, the
  daemon's own figure), the event loop's worst lag meanwhile (``LagWatch``, 5 ms probes:
  everything that held the loop, the copy-on-write faults included), and the whole
  snapshot's time (the child's pickling and writing included).

Prints one line per snapshot and the load average: figures on a shared machine are noisy,
the loop's share less so than the wall time.

``--gc``: instead, the garbage collector's pauses while the engine grows: ``--mentions``
(default here 200,000) fed into a fresh engine in batches of 1,000, every collection timed
(``gc.callbacks``), once as before and once with a ``gc.freeze()`` every ``--freeze-every``
mentions (20,000: about a snapshot's worth at 5,000 posts/s), as each forked snapshot now
does (``monitor.daemon.GcWatch``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.app import build_pipeline  # noqa: E402
from monitor.clock import ScaledClock  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.daemon import Daemon, LagWatch  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.walcheck import Checkpointer  # noqa: E402
from rules.engine import EscalationEngine  # noqa: E402
from rules.policy import BrandConfig  # noqa: E402
from rules.records import Author, Mention, Post, PostKind, Score  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "sentiment" / "train.jsonl"
T0 = 1_779_206_400.0 + 15 * 3600
BRANDS = ("小满咖啡", "大熊奶茶", "快书包")


class Filler:
    """Feeds mentions into the engine as the pipeline would (``on_mention``)."""

    def __init__(self, daemon: Daemon, texts: list[str]) -> None:
        self.daemon = daemon
        self.texts = texts
        self.n = 0

    def add(self, count: int, at: float) -> None:
        engine = self.daemon.pipeline.engine
        for _ in range(count):
            n = self.n
            brand = BRANDS[n % len(BRANDS)]
            uid = str(2_000_000_000 + n % 500_000)
            post = Post(id=str(4_900_000_000_000_000 + n), kind=PostKind.STATUS,
                        created_at=at, text=f"{brand} {self.texts[n % len(self.texts)]}",
                        author=Author(id=uid, screen_name=f"用户{uid[-6:]}",
                                      followers_count=n % 5000), reposts_count=n % 3)
            score = Score(sentiment=0.4, negative=False, severity="P3", terms=(),
                          reasons=())
            engine.on_mention(Mention(post=post, brand=brand, score=score, needs_reply=True,
                                      keywords=(brand,)), at)
            self.n += 1
        engine.dirty_mentions.clear()  # (nobody reads the projections here)
        engine.dirty_incidents.clear()


async def ingest_like(filler: Filler, rate: float, stop: asyncio.Event) -> None:
    """``rate`` mentions a second in 10 ms batches, until ``stop``."""
    while not stop.is_set():
        filler.add(max(1, int(rate / 100)), filler.daemon.clock.now())
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace, tmp: Path) -> None:
    with DATA.open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for _, line in zip(range(20_000), fh, strict=False)]
    config = Config(brands=tuple(BrandConfig(name=b, keywords=(b,),
                                             official_accounts=(str(7_000_000_001 + i),))
                                 for i, b in enumerate(BRANDS)))
    store = Store(tmp / "crisismon.db")
    pipeline = build_pipeline(config, store, [], lazy_scorer=True)
    daemon = Daemon(config, store, pipeline, ScaledClock(T0, 1.0), [])
    filler = Filler(daemon, texts)
    t = time.perf_counter()
    filler.add(0 if args.gc else args.mentions, T0)
    print(f"engine: {len(pipeline.engine.clocks):,} reply clocks, "
          f"{pipeline.engine.pending():,} pending deadlines, filled in "
          f"{time.perf_counter() - t:.1f}s", flush=True)
    if args.gc:
        gc_pauses(daemon, filler, args)
        store.close()
        return
    checkpoints = asyncio.create_task(Checkpointer(store).run())
    blocked, worst = [], []
    for i in range(args.rounds):
        stop = asyncio.Event()
        lag = LagWatch(0.005)
        watch = asyncio.create_task(lag.run())
        load = asyncio.create_task(ingest_like(filler, args.rate, stop))
        await asyncio.sleep(0.2)  # the probes and the load run before the snapshot too
        t = time.perf_counter()
        await daemon.snapshot_forked()
        took = time.perf_counter() - t
        stop.set()
        await load
        watch.cancel()
        blocked.append(daemon.snapshot_seconds)
        worst.append(lag.worst)
        print(f"snapshot {i + 1}: loop blocked {daemon.snapshot_seconds * 1000:6.1f} ms, "
              f"worst loop lag {lag.worst * 1000:6.1f} ms, whole snapshot {took:5.2f} s, "
              f"{len(pipeline.engine.clocks):,} clocks; load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    checkpoints.cancel()
    store.close()
    print(f"loop blocked per snapshot: max {max(blocked) * 1000:.0f} ms, mean "
          f"{sum(blocked) / len(blocked) * 1000:.0f} ms; worst loop lag max "
          f"{max(worst) * 1000:.0f} ms; state on disk "
          f"{sum(p.stat().st_size for p in tmp.rglob('*') if p.is_file()) / 1e6:.0f} MB")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} CPUs)")


def gc_pauses(daemon: Daemon, filler: Filler, args: argparse.Namespace) -> None:
    """The collector's pauses while ``args.mentions`` go into a fresh engine, without and
    with a freeze every ``args.freeze_every`` (see the module docstring)."""
    for every in (0, args.freeze_every):
        pipeline = daemon.pipeline
        pipeline.engine = EscalationEngine(pipeline.config.brands, pipeline.config.sla,
                                           pipeline.config.crisis, pipeline.config.tz)
        gc.collect()
        full: list[float] = []
        times = {"all": 0.0, "start": 0.0}

        def on_gc(phase: str, info: dict[str, int], times: dict[str, float] = times,
                  full: list[float] = full) -> None:
            if phase == "start":
                times["start"] = time.perf_counter()
                return
            took = time.perf_counter() - times["start"]
            times["all"] += took
            if info["generation"] == 2:
                full.append(took)

        gc.callbacks.append(on_gc)
        t = time.perf_counter()
        try:
            for n in range(0, args.mentions, 1000):
                filler.add(1000, T0 + n / 1000)
                if every and (n + 1000) % every == 0:
                    gc.freeze()
        finally:
            gc.callbacks.remove(on_gc)
            gc.unfreeze()
        took = time.perf_counter() - t
        what = f"a freeze every {every:,} mentions" if every else "no freeze (before)"
        print(f"{what}: {args.mentions:,} mentions in {took:.1f} s; full collections "
              f"{len(full)}: " + (", ".join(f"{x * 1000:.0f}" for x in full) + " ms"
                                  if full else "none") +
              f"; all collections {times['all']:.2f} s; load {os.getloadavg()[0]:.2f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mentions", type=int, default=None,
                        help="open reply clocks in the engine (100,000; --gc: 200,000)")
    parser.add_argument("--gc", action="store_true",
                        help="measure the collector's pauses instead (module docstring)")
    parser.add_argument("--freeze-every", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1250.0,
                        help="mentions a second into the engine while snapshotting")
    args = parser.parse_args()
    if args.mentions is None:
        args.mentions = 200_000 if args.gc else 100_000
    if not DATA.is_file():
        raise SystemExit(f"{DATA} not found (the shared data next to this checkout)")
    with tempfile.TemporaryDirectory(prefix="crisismon-snapshot-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
