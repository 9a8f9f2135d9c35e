"""The argument guard (rules.argument): exact replies in, exact verdicts out, and the
reply.argument alert end to end through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.app import build_pipeline
from monitor.config import load_config
from monitor.store import Store
from rules.argument import ArgumentGuard
from rules.lexicon import Lexicon, default_argument_lexicon
from rules.records import Author, Post, PostKind

ROOT = Path(__file__).resolve().parents[2]
GUARD = ArgumentGuard(default_argument_lexicon())
ISSUE = "系统显示你本人签收了，自己没收到还怪我们？别乱说"


@pytest.mark.parametrize(("text", "phrases", "moves"), [
    (ISSUE, ("系统显示你", "还怪我们", "乱说"), ("否认顾客", "归咎顾客")),
    ("你自己没看清楚就下单", ("你自己没看",), ("归咎顾客",)),
    ("不可能，我们的产品都经过检测", ("不可能",), ("否认顾客",)),
    ("买不起就别买", ("买不起",), ("贬低顾客",)),
    ("呵呵，您高兴就好", ("呵呵", "高兴就好"), ("讽刺",)),
    ("凭什么要我们赔？", ("凭什么",), ("反问顾客",)),
    ("亲，请不要无理取闹哦", ("无理取闹",), ("贬低顾客",)),  # polite words, still a fight
    ("不好意思，是您自己没看清楚规则哦～", ("您自己没看",), ("归咎顾客",)),
])
def test_arguing_replies(text: str, phrases: tuple[str, ...], moves: tuple[str, ...]) -> None:
    v = GUARD.read(text)
    assert v.argues, v
    assert (v.phrases, v.moves) == (phrases, moves)
    assert GUARD.check(text) == phrases


@pytest.mark.parametrize("text", [
    # polite replies full of 不 and 没
    "不好意思给您添麻烦了，退款已提交", "没问题，已经帮您备注好了", "不会再发生了，非常抱歉",
    "不客气！有问题随时找我们～", "没关系，您方便的时候再联系我们", "不用担心，不会影响保修",
    "别着急，我们这就帮您查物流", "没能第一时间回复您，真的很抱歉",
    # owning the fault with the words an argument would use
    "怪我们没有说清楚，给您添麻烦了", "这确实不可能是您的操作问题，是系统故障",
    "系统显示订单已签收，但您没收到肯定是我们的问题，已为您补发",
    # information, and a firm but civil no
    "您好，系统显示包裹已于今天上午签收，如果您没有收到，我们马上联系快递员核实",
    "理解您的心情，但根据规定，已拆封的商品无法退货，我们可以为您提供维修服务",
    "目前线上线下同价，不存在杀熟的情况，有疑问我们随时为您核对",
    "请问您方便提供一下订单号吗？", "您自己在家也可以试试重启路由器",
    "", "   ", "😀", "x" * 10_000,
])
def test_civil_replies(text: str) -> None:
    v = GUARD.read(text)
    assert not v.argues, v
    assert GUARD.check(text) == ()


@pytest.mark.parametrize(("text", "p_negative", "phrases"), [
    # no apology, thanks or offer, aimed at the customer, a negative tone: arguing
    ("你要这么想我们也没办法", 0.9, ("没办法", "整体语气（负面概率 0.90）")),
    ("你要这么想我们也没办法", 0.5, ()),             # the tone is not negative enough
    ("我们也没办法", 0.9, ()),                       # not aimed at anyone
    ("非常抱歉，你要这么想我们也理解", 0.9, ()),      # an apology: the tone is not asked
])
def test_tone_of_a_reply_with_nothing_to_offer(text: str, p_negative: float,
                                               phrases: tuple[str, ...]) -> None:
    asked: list[str] = []

    def tone(t: str) -> float:
        asked.append(t)
        return p_negative

    assert GUARD.check(text, tone) == phrases
    assert asked == ([] if "抱歉" in text or "你" not in text else [text])


def test_the_teams_lexicon_counts_too(tmp_path: Path) -> None:
    p = tmp_path / "arg.tsv"
    p.write_text("term\tweight\tcategory\n下次注意点\t5\tblame\n", encoding="utf-8")
    assert ArgumentGuard(Lexicon.load(p)).check("下次注意点") == ("下次注意点",)
    assert ArgumentGuard().check("下次注意点") == ()


def test_labelled_replies_are_many_varied_and_split_before_rules() -> None:
    rows = [json.loads(line) for line in
            (ROOT / "tests/data/official_replies.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) >= 300 and len({r["text"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"train", "heldout", "fresh"}
    assert {r["kind"] for r in rows if not r["argues"]} == {"polite", "apology", "info", "firm"}
    assert {r["kind"] for r in rows if r["argues"]} == {
        "blame", "deny", "condescend", "dismiss", "sarcasm", "rhetorical"}
    assert sum(r["split"] == "heldout" for r in rows) >= 90


def test_issue_example_raises_reply_argument_end_to_end(tmp_path: Path) -> None:
    """A complaint, then the issue's reply from the brand's official account: the pipeline
    (matcher, scorer, guard, engine) pages the supervisor with the arguing words."""
    config = load_config(ROOT / "config.toml")
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config, store)
    t0 = 1_780_000_000.0
    customer = Author(id="42", screen_name="顾客", followers_count=80)
    official = Author(id="7000000001", screen_name="小满咖啡官方", verified=True)
    complaint = Post(id="5001", kind=PostKind.STATUS, created_at=t0, author=customer,
                     text="在小满咖啡点的外卖显示签收了，我根本没收到，客服还不理人[怒]")
    reply = Post(id="5002", kind=PostKind.COMMENT, created_at=t0 + 60, author=official,
                 text=ISSUE, on_status_id="5001")
    civil = Post(id="5003", kind=PostKind.COMMENT, created_at=t0 + 120, author=official,
                 text="不好意思给您添麻烦了，没收到的话我们马上补发", on_status_id="5001")
    alerts = []
    for p in (complaint, reply, civil):
        with store.transaction():
            alerts += pipeline.handle(p, p.created_at)
    argue = [a for a in alerts if str(a.type) == "reply.argument"]
    assert len(argue) == 1
    (a,) = argue
    assert a.post_id == "5001" and a.level == 1 and a.severity == "P2"
    assert "问题用语：系统显示你、还怪我们、乱说" in a.text
    store.close()


def test_held_out_accuracy_and_no_false_trigger_on_polite_replies() -> None:
    rows = [json.loads(line) for line in
            (ROOT / "tests/data/official_replies.jsonl").read_text("utf-8").splitlines()]
    held = [r for r in rows if r["split"] == "heldout"]
    right = sum(GUARD.read(r["text"]).argues == r["argues"] for r in held)
    assert right >= 0.9 * len(held)
    polite = [r["text"] for r in rows
              if not r["argues"] and ("不" in r["text"] or "没" in r["text"])]
    assert len(polite) >= 50
    assert sum(GUARD.read(t).argues for t in polite) <= 0.03 * len(polite)
