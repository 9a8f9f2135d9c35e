"""Severity and argument-guard benchmark: ``python bench/severity.py [--config F] [--quiet]``.

Two labelled sets written for crisismon and kept in the tests:

- ``tests/data/severity_posts.jsonl``: posts labelled ``harm`` (poisoning, fire, injury,
  a child in danger, a product failure that could hurt), ``complaint`` (money, service,
  fraud) or ``benign`` (news, promotions, praise, questions, figures of speech, negated
  harm). Each is scored as ``crisismon score`` does (no author, no reach) with the
  configured sentiment model. Printed: harm posts at P1, complaints at P1/P2, benign posts
  the model calls negative (that figure is the sentiment model's alone), benign posts at
  P1/P2 and benign posts read as harm; overall and by part (``dev``, ``dev2``, ``dev3``:
  the posts the cues were written against, each written after the previous round of
  rules and then used for the next; ``heldout``, ``heldout2``: written before a round's
  rules, scored after them, then read; ``heldout3``: written before the third round's
  acts reading and committed alone; ``heldout4``: the same, written before the fourth
  round's reading of purchases beside a feeling about something else; the fifth round read
  the misses of both, so they are no longer unseen; ``heldout5``: written before the fifth
  round and committed alone, never read for rules: the unseen part).
- ``tests/data/official_replies.jsonl``: official replies labelled arguing or not, split
  70/30 before the guard's rules were written, plus a ``fresh`` part written after the
  grammar. Printed: accuracy on each part, with and without the tone rule (the held-out
  and fresh parts are the figures that count), false triggers on civil replies that
  contain 不 or 没, and the old fixed phrase list on the same held-out part.

Every miss is listed (``--quiet`` to hide them). Targets: harm P1 >= 90 %, complaints P1/P2
>= 80 %, benign negative <= 10 %, guard held-out accuracy >= 90 %, false triggers on polite
replies <= 3 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from monitor.app import build_argument_guard, build_scorer  # noqa: E402
from monitor.config import load_config  # noqa: E402
from rules.lexicon import default_argument_lexicon  # noqa: E402

POSTS = REPO_DIR / "tests" / "data" / "severity_posts.jsonl"
REPLIES = REPO_DIR / "tests" / "data" / "official_replies.jsonl"
HUMAN_TEST = REPO_DIR.parent / "shared" / "data" / "sentiment" / "human_test.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def share(n: int, d: int) -> str:
    return f"{n}/{d} = {n / d:.1%}" if d else "0/0"


def check(ok: bool, text: str) -> str:
    return f"  {'PASS' if ok else 'MISS'} {text}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO_DIR / "config.toml"))
    ap.add_argument("--quiet", action="store_true", help="do not list the misses")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    t = time.perf_counter()
    scorer = build_scorer(config)
    load_s = time.perf_counter() - t
    model = scorer.sentiment
    meta = getattr(model, "meta", None) or {}
    path = getattr(model, "path", None)
    print(f"sentiment model: scoring.model = {config.scoring.model!r} "
          f"({type(model).__name__}{', ' + Path(path).name if path else ''}"
          f"{', trained on ' + ', '.join(meta['trained_on']) if 'trained_on' in meta else ''}); "
          f"negative when P(positive) < {config.scoring.negative_below}; load {load_s:.2f}s")

    posts = read(POSTS)
    scored = [(row, scorer.score_text(row["text"])) for row in posts]
    by: dict[str, list] = {}
    for row, score in scored:
        by.setdefault(row["label"], []).append((row, score))
    print(f"\n{POSTS.relative_to(REPO_DIR)}: {len(posts)} posts "
          + ", ".join(f"{k} {len(v)}" for k, v in sorted(by.items())))
    print(f"{'label':<10} {'n':>4}  P1   P2   P3   P4   negative  danger")
    for label, rows in sorted(by.items()):
        sev = Counter(s.severity for _, s in rows)
        neg = sum(s.negative for _, s in rows)
        dan = sum(s.danger for _, s in rows)
        print(f"{label:<10} {len(rows):>4}  " + "  ".join(f"{sev[p]:>3}" for p in
                                                          ("P1", "P2", "P3", "P4"))
              + f"   {neg:>6}   {dan:>5}")
    harm = by.get("harm", [])
    complaints = by.get("complaint", [])
    benign = by.get("benign", [])
    harm_p1 = sum(s.severity == "P1" for _, s in harm)
    comp_p12 = sum(s.severity in ("P1", "P2") for _, s in complaints)
    ben_neg = sum(s.negative for _, s in benign)
    ben_p12 = sum(s.severity in ("P1", "P2") for _, s in benign)
    ben_harm = sum(s.danger for _, s in benign)
    print(f"harm posts at P1:               {share(harm_p1, len(harm))}")
    print(f"complaints at P1/P2:            {share(comp_p12, len(complaints))}")
    print(f"benign posts scored negative:   {share(ben_neg, len(benign))}   "
          "(the sentiment model with the acts reading, as served)")
    if scorer.act_negative_odds != 1.0:  # the same model without the acts reading
        import copy

        alone = copy.copy(scorer)
        alone.act_negative_odds = 1.0
        ben_alone = sum(alone.score_text(r["text"]).negative for r, _ in benign)
        print(f"  the model alone (no acts reading): {share(ben_alone, len(benign))}")
    print(f"benign posts at P1/P2:          {share(ben_p12, len(benign))}")
    print(f"benign posts read as harm:      {share(ben_harm, len(benign))}")
    print("by part (dev, dev2, dev3: read while the harm and grievance cues were written;")
    print("heldout: written afterwards and scored once, then read for the next round of cues;")
    print("heldout2: written before the acts reading and the last cues, scored after them;")
    print("heldout3, heldout4: written before the third and fourth rounds, committed alone,")
    print("  read in the fifth round for general causes (no longer unseen);")
    print("heldout5: written before the fifth round, committed alone, not read: the unseen part):")
    for part in dict.fromkeys(r.get("split", "dev") for r in posts):
        sub = [(r, s) for r, s in scored if r.get("split", "dev") == part]
        h = [s for r, s in sub if r["label"] == "harm"]
        c = [s for r, s in sub if r["label"] == "complaint"]
        b = [s for r, s in sub if r["label"] == "benign"]
        print(f"  {part:<8} harm P1 {share(sum(s.severity == 'P1' for s in h), len(h))}; "
              f"complaints P1/P2 {share(sum(s.severity in ('P1', 'P2') for s in c), len(c))}; "
              f"benign negative {share(sum(s.negative for s in b), len(b))}, "
              f"as harm {sum(s.danger for s in b)}")
    if not args.quiet:
        print("misses:")
        for row, s in scored:
            miss = ((row["label"] == "harm" and s.severity != "P1")
                    or (row["label"] == "complaint" and s.severity not in ("P1", "P2"))
                    or (row["label"] == "benign" and (s.negative or s.danger
                                                      or s.severity in ("P1", "P2"))))
            if miss:
                why = "；".join(s.reasons)
                print(f"  [{row['label']}/{row['kind']}] {s.severity} p={s.sentiment:.2f} "
                      f"{row['text'][:36]} | {why}")

    replies = read(REPLIES)
    guard = build_argument_guard(config)
    old = default_argument_lexicon()
    print(f"\n{REPLIES.relative_to(REPO_DIR)}: {len(replies)} replies "
          f"({sum(r['argues'] for r in replies)} arguing), split "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r['split'] for r in replies)
                                                     .items())))
    from rules.sentiment import polarities

    def tone(text: str) -> float:  # as the pipeline asks it (Pipeline._tone)
        return polarities(scorer.sentiment, [text])[0].negative

    print("parts: train (the rules were written on it), heldout (split off before any rule),")
    print("fresh (written after the grammar; the tone rule was added after seeing it once)")
    results: dict[str, float] = {}
    for part in ("train", "heldout", "fresh"):
        rows = [r for r in replies if r["split"] == part]
        if not rows:
            continue
        alone = sum(guard.read(r["text"]).argues == r["argues"] for r in rows)
        right = sum(guard.read(r["text"], tone).argues == r["argues"] for r in rows)
        results[part] = right / len(rows)
        print(f"guard accuracy, {part:<8} {share(right, len(rows))}   "
              f"(grammar alone {share(alone, len(rows))})")
    held = [r for r in replies if r["split"] == "heldout"]
    old_right = sum(bool(old.find(r["text"])) == r["argues"] for r in held)
    print(f"old phrase list, heldout  {share(old_right, len(held))}   (before this guard)")
    polite = [r for r in replies if not r["argues"] and ("不" in r["text"] or "没" in r["text"])]
    polite_held = [r for r in polite if r["split"] == "heldout"]
    fp = [r for r in polite if guard.read(r["text"], tone).argues]
    fp_held = [r for r in polite_held if guard.read(r["text"], tone).argues]
    civil_held = [r for r in held if not r["argues"]]
    fp_civil = [r for r in civil_held if guard.read(r["text"], tone).argues]
    print("false triggers, civil replies with 不/没, heldout  "
          f"{share(len(fp_held), len(polite_held))}")
    print(f"false triggers, civil replies with 不/没, all      {share(len(fp), len(polite))}")
    print(f"false triggers, all civil replies, heldout         "
          f"{share(len(fp_civil), len(civil_held))}")
    if not args.quiet:
        print("misses (heldout, fresh):")
        for r in held + [r for r in replies if r["split"] == "fresh"]:
            v = guard.read(r["text"], tone)
            if v.argues != r["argues"]:
                what = f"triggered on {v.phrases}" if v.argues else "not caught"
                print(f"  [{r['split']}/{r['kind']}] {r['text'][:40]} | {what}")

    if HUMAN_TEST.exists():  # what reading harm and grievances adds to scoring one text
        texts = [json.loads(x)["text"] for x in HUMAN_TEST.read_text("utf-8").splitlines()]
        from rules.textnorm import normalise_for_scoring
        norms = [normalise_for_scoring(x).lower() for x in texts]
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for n in norms:
                scorer.harm.read_normalised(n)
                scorer.grievance.read_normalised(n)
            best = min(best, time.perf_counter() - t)
        print(f"\nharm + grievance reading: {best / len(norms) * 1e6:.1f} µs a text "
              f"(best of 3 over the {len(norms)} texts of human_test.jsonl)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}")

    guard_held = results["heldout"]
    polite_rate = len(fp) / len(polite) if polite else 0.0
    print("targets (all posts, then the held-out part alone):")
    lines = []
    held_parts = ("heldout", "heldout2", "heldout3", "heldout4", "heldout5")
    for part, sub in (("all", scored), *((name, [(r, s) for r, s in scored
                                               if r.get("split") == name])
                                         for name in held_parts)):
        h = [s for r, s in sub if r["label"] == "harm"]
        c = [s for r, s in sub if r["label"] == "complaint"]
        b = [s for r, s in sub if r["label"] == "benign"]
        hp1 = sum(s.severity == "P1" for s in h)
        cp12 = sum(s.severity in ("P1", "P2") for s in c)
        bneg = sum(s.negative for s in b)
        lines += [
            (hp1 >= 0.9 * len(h), f"{part}: harm posts P1 {hp1}/{len(h)} >= 90%"),
            (cp12 >= 0.8 * len(c), f"{part}: complaints P1/P2 {cp12}/{len(c)} >= 80%"),
            (bneg <= 0.1 * len(b),
             f"{part}: benign negative {bneg}/{len(b)} <= 10% (as served)"),
        ]
    lines += [
        (guard_held >= 0.9, f"guard held-out accuracy {guard_held:.3f} >= 0.90"),
        (polite_rate <= 0.03,
         f"false triggers on polite replies with 不/没 {polite_rate:.1%} <= 3%"),
    ]
    for ok, text in lines:
        print(check(ok, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
