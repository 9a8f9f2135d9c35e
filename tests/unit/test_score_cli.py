"""``crisismon score``: polarity and p_negative on every line, bad input scored, one output line
per input line (blank lines included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLARITIES = {"negative", "neutral", "positive"}


def score_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "score", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def check_record(rec: dict[str, object]) -> None:
    assert set(rec) >= {"sentiment", "negative", "polarity", "p_negative", "brands",
                        "severity", "terms"}
    assert 0.0 <= rec["sentiment"] <= 1.0 and 0.0 <= rec["p_negative"] <= 1.0
    assert rec["polarity"] in POLARITIES
    assert rec["negative"] is (rec["polarity"] == "negative")
    assert rec["negative"] is (rec["sentiment"] < 0.4)  # config.toml: negative_below = 0.4


def test_bad_input_is_scored_and_blank_lines_keep_their_place() -> None:
    texts = [
        "",                                          # empty text
        "小满咖啡的外卖太慢了，" * 1_000,                # 10,000 characters
        "😡😡😡🤮",                                    # emoji only
        "小滿咖啡的服務太差了，再也不來了",                # traditional characters
        "小满咖啡的app太垃圾了, totally useless, 退款!!!",  # English mixed in
    ]
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in texts]
    lines.insert(2, "")     # a blank line
    lines.insert(4, "   ")  # and one of spaces
    run = score_cli("--jsonl", stdin="\n".join(lines) + "\n")
    assert run.returncode == 0, run.stderr
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(out) == len(lines) == 7
    for rec in out:
        check_record(rec)
    # A blank line is scored as an empty text.
    assert out[2] == out[4] == out[0]
    assert out[0]["brands"] == [] and out[0]["polarity"] != "negative"
    long, trad, mixed = out[1], out[5], out[6]
    assert long["brands"] == trad["brands"] == mixed["brands"] == ["小满咖啡"]
    assert trad["negative"] and mixed["negative"] and long["negative"]


def test_polarity_fields_on_arguments() -> None:
    run = score_cli("据统计，2019年全国粮食总产量为6.6亿吨，比上年增长0.9%。",
                    "新品太好喝了，店员也很热情[哈哈]", "客服态度恶劣，要求退款[怒]")
    assert run.returncode == 0, run.stderr
    news, praise, complaint = [json.loads(x) for x in run.stdout.splitlines()]
    for rec in (news, praise, complaint):
        check_record(rec)
    assert [news["polarity"], praise["polarity"], complaint["polarity"]] == \
        ["neutral", "positive", "negative"]
    assert complaint["p_negative"] > 0.5 > praise["p_negative"]


def test_large_input_on_two_processes_equals_one_process() -> None:
    from monitor.scorecmd import CHUNK

    texts = ["小满咖啡的拿铁太难喝了[怒]", "小满咖啡真好喝[哈哈]", "今天天气不错", "",
             "快书包送货太慢了，要求退款"]
    lines = [json.dumps({"text": texts[i % len(texts)] + str(i)}, ensure_ascii=False)
             for i in range(2 * CHUNK + 500)]
    lines[10] = "{broken"           # in the first chunk: the helper process scores it
    lines[CHUNK + 7] = ""           # in the second: this process scores it
    lines[2 * CHUNK + 3] = '{"txt": 1}'
    stdin = "\n".join(lines) + "\n"
    one = score_cli("--jsonl", "--jobs", "1", stdin=stdin)
    two = score_cli("--jsonl", stdin=stdin)
    assert one.returncode == two.returncode == 2
    assert one.stdout == two.stdout and one.stderr == two.stderr
    out = two.stdout.splitlines()
    assert len(out) == len(lines)
    assert out[10] == out[2 * CHUNK + 3] == '{"error":"invalid input line"}'
    check_record(json.loads(out[CHUNK + 7]))
    assert [line.split(":")[1] for line in two.stderr.splitlines()] == \
        ["11", str(2 * CHUNK + 4)]
