"""Writes ``seeds/feeds/sample_day.jsonl``: a day of the fictional brand 小满咖啡.

Written by us, deterministic (fixed seed), so the bundled feed can be regenerated
byte for byte: ``python seeds/make_sample_feed.py``. The scenario, in China time on
2026-05-20:

- all day: ordinary mentions (praise, questions, small complaints), most answered by
  the official account within 1-4 minutes, some late, a few never; posts about the
  solar term 小满 that are *not* mentions; a traditional-character mention;
- 09:12 a complaint resolved privately, then followed up in public (no alert);
- 10:30 a complaint resolved privately with no public follow-up (resolution.not_public);
- 11:05 an official reply that argues with the customer (reply.argument);
- 12:00 a comment mention answered with reply_comment; 13:00 a pure repost (no reply);
- 14:00 an influencer (520k followers) reports food poisoning: a crisis opens at once;
  a burst of negative posts and ~150 reposts follow; the official statement comes at
  15:25, after the 1 h deadline (crisis.escalated at 15:00); checkpoints follow and the
  incident closes 24 h after it opened, once things are calm;
- 16:20 a mention acknowledged by the duty responder but never answered (ack does not
  stop the reply clock).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

CN = timezone(timedelta(hours=8))
DAY = datetime(2026, 5, 20, tzinfo=CN)
OFFICIAL = {"id": "7000000001", "screen_name": "小满咖啡", "followers_count": 880000,
            "verified": True, "verified_type": 2}
SERVICE = {"id": "7000000002", "screen_name": "小满咖啡客服", "followers_count": 65000,
           "verified": True, "verified_type": 2}
OUT = Path(__file__).resolve().parent / "feeds" / "sample_day.jsonl"

PRAISE = [
    "小满咖啡的新品生椰拿铁太好喝了[哈哈]，每天一杯根本停不下来",
    "今天去小满咖啡门店，店员小姐姐超级热情，拉花也好看[心]",
    "小满咖啡外卖半小时就到了，还是热的，好评[赞]",
    "推荐小满咖啡的美式，性价比很高，上班续命全靠它[嘻嘻]",
    "小满咖啡的会员日活动很划算，买一送一开心[太开心]",
    "和闺蜜在小满咖啡坐了一下午，环境安静舒服，好喜欢",
]
QUESTION = [
    "请问小满咖啡的燕麦拿铁是不是换配方了？",
    "小满咖啡什么时候在我们学校附近开店啊？",
    "小满咖啡的会员积分怎么兑换？找了半天没找到入口",
    "有人知道小满咖啡的外卖几点停止配送吗",
]
GRIPE = [
    "小满咖啡今天的拿铁有点淡，不太满意[失望]",
    "小满咖啡外卖慢死了，等了五十分钟，差评[怒]",
    "小满咖啡门店排队太久了，点单系统又卡住了，真烦",
    "小满咖啡的杯盖又漏了，洒了一身，气死了[抓狂]",
]
NOT_MENTIONS = [
    "今日小满，小得盈满，愿大家万事小满就好",
    "小满节气到了，麦穗渐满，记得吃苦菜",
    "今天的咖啡好苦，加了两包糖还是苦",
    "小满时节雨水多，出门记得带伞",
]
CRISIS = [
    "小满咖啡出事了？朋友喝完拿铁也拉肚子，太可怕了[怒]",
    "再也不喝小满咖啡了，食品安全都保证不了[怒][怒]",
    "小满咖啡必须给个说法！我昨天喝完也呕吐了，是不是原料有问题[泪]",
    "小满咖啡食物中毒的事有人管吗？投诉无门，要去12315维权[怒]",
    "看到小满咖啡中毒的新闻，吓得我把会员卡都退了，太失望了",
    "小满咖啡到现在一句回应都没有，太让人寒心了[怒]",
    "家里孩子喝了小满咖啡的饮品也不舒服，心疼，要求退款[泪]",
    "小满咖啡这次要是不给交代，我就去曝光[怒]",
]
OFFICIAL_REPLIES = [
    "您好，感谢您的反馈，已私信您，请查收~",
    "感谢喜欢！我们会继续努力[心]",
    "您好，已记录您的问题，稍后客服会联系您，抱歉给您带来不便",
    "亲，这个问题已反馈给门店，感谢您的耐心",
]


class Feed:
    def __init__(self, seed: int = 20260520) -> None:
        self.rng = random.Random(seed)
        self.lines: list[tuple[datetime, int, dict[str, object]]] = []
        self.seq = 0
        self.status_id = 5010000000000000
        self.comment_id = 4910000000000000
        self.user_id = 1100000000

    def when(self, t: datetime, weibo_format: bool) -> str:
        if weibo_format:  # Weibo's own format, half the time, so both parsers are used
            return t.strftime("%a %b %d %H:%M:%S %z %Y")
        return t.isoformat()

    def add(self, t: datetime, obj: dict[str, object]) -> dict[str, object]:
        self.seq += 1
        obj.setdefault("created_at", self.when(t, self.seq % 2 == 0))
        self.lines.append((t, self.seq, obj))
        return obj

    def user(self, followers: int | None = None, verified: bool = False) -> dict[str, object]:
        self.user_id += self.rng.randint(1, 9999)
        f = followers if followers is not None else int(self.rng.lognormvariate(5.5, 1.6))
        return {"id": self.user_id, "screen_name": f"用户{self.user_id % 100000:05d}",
                "followers_count": f, "verified": verified}

    def status(self, t: datetime, text: str, user: dict[str, object] | None = None,
               reposts: int = 0, retweeted: str | None = None) -> dict[str, object]:
        self.status_id += self.rng.randint(1, 5000)
        obj: dict[str, object] = {"id": str(self.status_id), "text": text,
                                  "user": user or self.user(), "reposts_count": reposts,
                                  "comments_count": self.rng.randint(0, 20),
                                  "attitudes_count": self.rng.randint(0, 50)}
        if retweeted:
            obj["retweeted_status"] = {"id": retweeted}
        return self.add(t, obj)

    def comment(self, t: datetime, text: str, on: str, user: dict[str, object] | None = None,
                reply_to: str | None = None) -> dict[str, object]:
        self.comment_id += self.rng.randint(1, 5000)
        obj: dict[str, object] = {"id": str(self.comment_id), "text": text,
                                  "user": user or self.user(), "status": {"id": on},
                                  "reposts_count": 0, "comments_count": 0,
                                  "attitudes_count": 0}
        if reply_to:
            obj["reply_comment"] = {"id": reply_to}
        return self.add(t, obj)

    def reply(self, t: datetime, to: dict[str, object], text: str | None = None,
              account: dict[str, object] = SERVICE) -> dict[str, object]:
        """An official public reply: a comment on the status, or a reply to a comment."""
        body = text or self.rng.choice(OFFICIAL_REPLIES)
        if "status" in to:
            on = str(to["status"]["id"])  # type: ignore[index]
            return self.comment(t, body, on, dict(account), reply_to=str(to["id"]))
        return self.comment(t, body, str(to["id"]), dict(account))

    def action(self, t: datetime, kind: str, target: str, by: str,
               public: bool | None = None) -> None:
        obj: dict[str, object] = {"action": kind, "target": target, "by": by,
                                  "created_at": t.isoformat()}
        if public is not None:
            obj["public"] = public
        self.add(t, obj)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for _, _, obj in sorted(self.lines, key=lambda x: (x[0], x[1])):
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return DAY.replace(hour=hh, minute=mm, second=ss)


def build() -> Feed:
    f = Feed()
    rng = f.rng
    # --- the ordinary day: a mention every ~12-30 minutes, 08:00-22:30
    t = at(8, 0)
    n = 0
    while t < at(22, 30):
        t += timedelta(minutes=rng.randint(12, 30), seconds=rng.randint(0, 59))
        if at(13, 55) <= t <= at(16, 0):
            continue  # the crisis hours are scripted below
        n += 1
        kind = rng.random()
        text = rng.choice(PRAISE if kind < 0.5 else QUESTION if kind < 0.75 else GRIPE)
        post = f.status(t, text)
        fate = rng.random()
        if fate < 0.8:
            f.reply(t + timedelta(seconds=rng.randint(40, 240)), post)
        elif fate < 0.93:
            f.reply(t + timedelta(seconds=rng.randint(370, 720)), post)  # late
        # else: never answered -> warning, breach, escalated
        if n % 5 == 0:
            f.status(t + timedelta(minutes=3), rng.choice(NOT_MENTIONS))
    f.status(at(8, 40), "小滿咖啡的新品太好喝了[哈哈]，推薦給大家")  # traditional characters

    # --- 09:12 private resolve, then a public follow-up: no alert
    p = f.status(at(9, 12), "小满咖啡外卖送错了，等了一个小时还是错的[怒]")
    f.reply(at(9, 14), p, "非常抱歉！已私信您安排补送")
    f.action(at(9, 20), "resolve", str(p["id"]), "客服小王", public=False)
    f.reply(at(9, 35), p, "已为您补送并退款，感谢您的耐心，欢迎再次监督[心]")

    # --- 10:30 private resolve, no public follow-up: resolution.not_public at 11:10
    p = f.status(at(10, 30), "在小满咖啡门店买的拿铁里有头发，太恶心了，投诉！[吐]")
    f.reply(at(10, 33), p, "非常抱歉，已私信您处理")
    f.action(at(10, 40), "resolve", str(p["id"]), "客服小李", public=False)

    # --- 11:05 an official reply that argues: reply.argument
    p = f.status(at(11, 5), "小满咖啡的店员态度太差了，我问个问题还翻白眼[怒]")
    f.reply(at(11, 7), p, "请你搞清楚情况再发微博，我们店员不可能这样，不是我们的问题")

    # --- 12:00 a comment mention answered with reply_comment
    host = f.status(at(11, 58), "中午喝什么好呢？求推荐")
    c = f.comment(at(12, 0), "小满咖啡的冰美式不错，不过今天门店空调坏了好热", str(host["id"]))
    f.reply(at(12, 2), c, "感谢提醒，已通知门店尽快维修空调！")

    # --- 13:00 a pure repost of a praise post: volume only, no reply needed
    praise = f.status(at(12, 50), "小满咖啡和图书馆联名的杯子好可爱[哈哈]")
    f.reply(at(12, 52), praise)
    f.status(at(13, 0), "转发微博//@用户:小满咖啡和图书馆联名的杯子好可爱[哈哈]",
             retweeted=str(praise["id"]))

    # --- 14:00 the crisis
    influencer = {"id": 1987654321, "screen_name": "美食博主阿杰", "followers_count": 520000,
                  "verified": True, "verified_type": 0}
    root = f.status(at(14, 0), "今天在小满咖啡喝了冰拿铁，半小时后上吐下泻被送医，"
                    "医生说疑似食物中毒！大家千万小心[怒][怒]", influencer, reposts=12)
    f.reply(at(14, 4), root, "非常抱歉，我们已私信您，正在紧急核查门店情况")
    for i in range(150):  # the repost wave: fast in the first hour, then tailing off
        tt = at(14, 1) + timedelta(seconds=int(rng.expovariate(1 / 1500)))
        # Weibo cuts long chains; most reposts quote only the alarming part, not the brand.
        words = rng.choice(["转发微博", "转发微博", "太可怕了", "已经不敢喝了", "求官方回应", ""])
        chain = "小满咖啡疑似食物中毒" if i % 15 == 0 else "疑似食物中毒，大家千万小心"
        f.status(tt, f"{words}//@美食博主阿杰:{chain}", retweeted=str(root["id"]))
    for _ in range(36):  # the burst of negative mentions
        tt = at(14, 3) + timedelta(seconds=int(rng.uniform(0, 100 * 60)))
        post = f.status(tt, rng.choice(CRISIS))
        if rng.random() < 0.6:
            f.reply(tt + timedelta(seconds=rng.randint(60, 280)), post,
                    "非常抱歉，我们正在紧急调查，已私信您了解情况")
    f.status(at(15, 25), "【关于网友反映饮品安全问题的说明】今日14时，"
             "有网友反映在我司门店饮用冰拿铁后身体不适。我们高度重视，已暂停涉事门店营业，配合市场监管部门抽检原料，并全力协助"
             "就医。调查结果将第一时间公布。对受影响的顾客深表歉意。", dict(OFFICIAL))

    # --- 16:20 acknowledged but never answered: the clock still runs
    p = f.status(at(16, 20), "小满咖啡会员卡余额怎么突然少了？没人解释一下吗[疑问]")
    f.action(at(16, 22), "ack", str(p["id"]), "值班客服")
    return f


if __name__ == "__main__":
    build().write(OUT)
    print(f"wrote {OUT}")
