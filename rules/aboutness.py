"""Is a story about the brand, or does it only name it? Pure; one function of the text.

A grim story that names a brand is not the brand's crisis when the brand is only a
landmark (一对老人在华联超市门口…), an object someone owns or rides in (乘坐本田轿车的
领导, 书记的奥迪车), a thing bought or stolen (买苹果手机, 包里有佳能相机, also with a
model named between brand and product: 佳能EOS 5D 机身), or a source or platform
(来自腾讯微博的图, 在百度注册, 新浪新闻正播报, @优酷). Nor is a giveaway or a
promotion (有奖转发, 7.5折). What the role words are is Chinese grammar, not this data:
a place noun after the name, a verb of riding, owning, buying or hitting before it, a
medium noun after it. The brand is the subject again (and a story can be its crisis)
when the text gives the company a voice or a deed (…公司称, 董事长, 回应, 召回, 瘫痪) or
speaks of its product failing (…车自燃, 刹车失灵, …手机爆炸).

``brand_role`` looks at every place a brand keyword occurs in the text. One
occurrence where the brand acts or fails makes the text ``about``; otherwise, when
every occurrence is in a passing role, ``passing``; a promotion is ``promotion``;
anything else ``unknown``, which the detector treats as possibly about the brand (the
safe side: a missed crisis costs more than a page to dismiss).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum


class Role(StrEnum):
    """What the brand is in a text."""

    ABOUT = "about"
    """The brand acts, speaks, is accused, or its product fails."""
    PASSING = "passing"
    """A landmark, an object owned or bought, a source or platform."""
    PROMOTION = "promotion"
    """A giveaway, a sale, an advert."""
    UNKNOWN = "unknown"


# A product's model designation between the name and the product noun (佳能EOS 5D 机身,
# 苹果iPhone 6手机): Latin letters, digits and their separators.
_MODEL = r"(?:[A-Za-z0-9][A-Za-z0-9 .+\-]{0,20})?"
# After the name: the company speaks, acts, is accused, or its staff/organs are meant.
_ACTOR_AFTER = re.compile(
    r"^(?:[（(][^）)]{0,20}[）)])?"  # 卢卡拉（Lucara）
    r"(?:公司|集团|国际|控股|股份|银行|分行|支行|总部|方面|官方|门店|旗下|"
    r"汽车|轿车|" + _MODEL + r"(?:车|手机|电脑|相机))?"
    r"(?:董事长|董事会|总裁|总经理|CEO|ceo|创始人|老板|负责人|管理层|高管|股东|员工|职员|"
    r"工作人员|店员|客服|官员|领导|主任|厂方|team|团队|仓库|工厂|"
    r"称|表示|回应|声明|宣布|公告|承认|否认|道歉|致歉|辟谣|回复|解释|反击|起诉|"
    r"被曝|曝光|被查|被罚|涉嫌|被指|被告|召回|瘫痪|宕机|故障|停摆|倒闭|裁员|欠薪|"
    r"生锈|漏油|自燃|失灵|超标|有毒|致癌|不合格|假货|爆炸|起火|着火|冒烟|"
    r"产品|系统|服务器|\S{0,4}?(?:喝了|吃了|喝的|吃的|买的|用餐|就餐|消费|点了|下单)|微博team|微博团队|.{0,6}?(?:事件|门(?![口前店外])))")
# Before the name: the company as the one accused or affected by a deed.
_ACTOR_BEFORE = re.compile(r"(?:曝光|举报|投诉|起诉|抵制|质疑|调查|黑|施工方|开发商|厂家|"
                           r"这就是|又是)$")
# After the name: the brand as a place (landmark), a vehicle or device owned, a medium.
_PASSING_AFTER = re.compile(
    r"^(?:超市|商场|门店|店|大厦|广场|营业部|证券|证劵|营业厅)?"
    r"(?:门口|门前|附近|旁边|旁|对面|楼下|楼上|前面|停车场|路口|里面)"
    r"|^(?:" + _MODEL + r"|\S{0,3}?)(?:车主|轿车|越野车|豪车|跑车|座驾|车队|卡宴|霸道|"
    r"车(?![间站票])|相机|机身|手机|电脑|镜头|行车记录仪)"
    r"|^\S{0,3}?一(?:女子|男子|名|位|个|老人|小孩|男孩|女孩)"
    r"|^(?:违章|被暂扣|被扣|被砸|停在|停放)"
    r"|^(?:微博|新闻|账户|账号|网站|客户端|视频|上搜|上查|上注册|注册|直播|正播报|"
    r"的一张图|的图片)")
# Before the name: riding, owning, buying, hitting, citing.
_PASSING_BEFORE = re.compile(
    r"(?:乘坐|坐着|开着|开的|驾驶|驾着|(?:一|几|两)?辆\S{0,4}|座驾|价值|百万|万的|崭新的|"
    r"(?:购买|买了|买)(?:这么多|那么多|了?[一两几0-9]+辆)?|"
    r"撞上|撞|砸毁|砸|划伤|刮|来自|据|@)\s*$")
_PROMOTION = re.compile(r"有奖转发|转发抽奖|抽奖|抽取|送出|免费送|赢取|赢.{0,6}大奖|中奖|"
                        r"优惠|折扣|[0-9.一二三四五六七八九]折|促销|新品|开业|有现货|"
                        r"下载|门票|礼盒|福利")
# Anywhere in the text: the staff or side of the business where it happened (店员称,
# 被厂方打死): the place named is then the one that acted, not a landmark.
_PREMISES_ACT = re.compile(r"厂方|店方|店员|商家|院方|公司方面|公司回应|公司称")
_WINDOW = 8


def brand_role(text: str, keywords: Sequence[str]) -> Role:
    """The brand's role in ``text``, where ``keywords`` are the names found in it."""
    spans = _occurrences(text, keywords)
    if not spans:
        return Role.UNKNOWN
    if _PREMISES_ACT.search(text):
        return Role.ABOUT
    passing = 0
    for start, end in spans:
        before, after = text[max(0, start - _WINDOW):start], text[end:end + _WINDOW + 12]
        if _ACTOR_AFTER.search(after) or _ACTOR_BEFORE.search(before):
            return Role.ABOUT
        if _PASSING_AFTER.search(after) or _PASSING_BEFORE.search(before):
            passing += 1
    if passing == len(spans):
        return Role.PASSING
    if _PROMOTION.search(text):
        return Role.PROMOTION
    return Role.UNKNOWN


def _occurrences(text: str, keywords: Sequence[str]) -> list[tuple[int, int]]:
    """Where the keywords occur, longest first, without overlaps (京基100 over 京基)."""
    lowered = text.lower()
    taken: list[tuple[int, int]] = []
    for kw in sorted({k for k in keywords if k}, key=len, reverse=True):
        k = kw.lower()
        i = lowered.find(k)
        while i >= 0:
            j = i + len(k)
            if all(j <= a or i >= b for a, b in taken):
                taken.append((i, j))
            i = lowered.find(k, j)
    return sorted(taken)
