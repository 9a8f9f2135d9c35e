"""What a post does, read without the sentiment model: asks, announces, promotes, praises.

Why: the sentiment model learned from SMP2020-EWECT, whose people labelled the *emotion* of
the writer (angry, sad, fear → negative). There, 77 % of the posts that ask something are
negative (the asker is worried or fed up), and a brand post told in the first person leans
negative too. A PR team asks a different question: is this post against the brand? An
information-seeking question (请问门店可以带宠物吗？), a notice (本周六起延长营业), a giveaway
(关注并转发，抽三位送年卡) or a thank-you is not, unless it also says something went wrong.

So, like the harm reading, this is a separate reading of what the post *does*. When it finds
one of these acts and nothing that blocks it (a grievance or harm cue, a rhetorical or
distressed word, bad corporate news), the scorer moves the model's odds of ``negative`` by
``ACT_NEGATIVE_ODDS``: a prior correction (P(negative | such a post) is far lower among brand
mentions than in the emotion-labelled corpus), not an override, so a post the model is sure
about stays negative, and ``sentiment``, ``p_negative``, ``polarity`` and ``negative`` stay
consistent with one another.

The patterns are general forms of Chinese questions, notices, promotions and thanks, written
from the grammar, not from the labelled posts; ``bench/severity.py`` reports them on the parts
written before and after (``heldout2``).

The same emotion labels read hyperbole (累死了, 好喝到哭, 笑死), praise told through a negated
flaw (屏幕都没碎，牛; 一次都没坏过) and the product as relief (加班到十点…一碗热汤面续命) as the
feeling they carry, while the brand is not what the feeling is about. Those readings
(``夸张``, ``没出毛病``, ``解围``, and a good quality with a degree word under ``称赞``) are
asked only where the model leans negative; a weak harm or grievance cue lets the figurative
ones through (they explain it), a harm report or a complaint blocks all. ``heldout3`` of the
severity set was written before them.

The fourth round's ``他事`` reads a purchase told beside a feeling about something else, with
the reason the product is there (考试挂了心情超差，点了份麦当劳安慰一下自己): the complaint
grammar found nothing against the seller, and the post gives the product a role beside the
feeling. ``heldout4`` was written before it.
"""

from __future__ import annotations

import re

import ahocorasick

from rules.rxlead import Lead

ASK = re.compile(
    # explicit requests for information (请问, 有没有人知道, 求推荐)
    r"请问|想问一?下|问一下|求问|求助一下|求推荐|求科普|有没有(?:人|姐妹|朋友|大佬|宝子|小伙伴)"
    r"|有人知道|谁知道|有谁知道|有没有推荐"
    # what, when, where, how much, how is it — ending the clause (几点开始送吗？ 吸力怎么样？)
    r"|(?:什么时候|几点|多久|多长时间|几天|哪里|哪儿|在哪|哪家|哪款|哪个|哪种|多少钱|怎么样"
    r"|怎么(?:去|买|用|办|预约|报名|联系|选|吃))[^,.!?;。]{0,8}(?:[?？]|[吗呢啊呀]|$)"
    # yes/no questions about what one may do or what a thing is (可以带宠物进去吗？ 值得买吗)
    r"|(?:可以|能|会|需要|要|支持|值得|适合)[^,.!?;。]{0,14}[吗么](?:[?？]|$|[,.!;。])"
    # asking whether what someone claimed is true (教练说喝了不会伤肾，真的吗). Not a bare
    # 真的吗 under a repost of bad news, nor a rumour (听说…真的假的): that is alarm
    r"|(?<![听据])(?:说|号称|宣称|宣传|介绍)[^?？!！]{2,30}(?:是?真的吗|真的假的)"
)
"""An information-seeking question."""

ANNOUNCE = re.compile(
    r"发布|宣布|公布|通报|公告|官方[:：]|通知[:：]|财报|营收|同比|签约|签署|上线|入选|获评|荣获"
    r"|开业|开张|开通|延长营业|恢复营业|调整为"
    r"|(?:从|自)?(?:今日|今天|明天|明日|下周|本周|即日|[0-9一二三四五六七八九十]+月"
    r"[0-9一二三四五六七八九十]+[日号])起"
)
"""A notice or a piece of news."""

PROMOTE = re.compile(
    r"抽奖|转发抽|关注[并和+]?转发|转发[并和+]?关注|抽(?:\d+|[一二两三四五六七八九十]+)(?:位|个|名)"
    r"|满\d+减\d+|第二(?:杯|件|份)半价|半价|买一送一|[0-9一二三四五六七八九](?:\.\d)?折"
    r"|优惠|折扣|特价|限时|秒杀|包邮|福利|上新|新品上市|免费领|领券|直降|兑换券|代金券"
)
"""A promotion or a giveaway."""

PRAISE = re.compile(
    r"好评|五星|点赞|感谢|谢谢|推荐|回购|安利|强推|必须收|绝配|yyds|良心|靠谱|给力|满意|贴心"
    r"|太好(?:吃|喝|用|看|听)了"
)
"""Thanks, a recommendation, a repeat purchase."""

GOOD = re.compile(
    # a good quality raised by a degree word (太过瘾了, 真香啊, 特别干净, 服务很周到), in a post
    # with no turn (但是, 就是, 可惜: 好吃，就是太慢了 is a complaint) and not negated (不太好用)
    r"^(?!.*(?:但|可是|就是|不过|可惜|然而|只是|要是|如果|本以为|以为))"
    r".*(?<![不没])(?<!不是)(?:太|真|好|超|很|特别|非常|超级|巨|贼)(?:好吃|好喝|好用|好看|好听|好玩|舒服"
    r"|方便|划算|实惠|过瘾|香|爽|赞|棒|省心|给力|贴心|可爱|惊艳|干净|暖心|专业|耐心|细心|周到"
    r"|新鲜|好闻|顺滑|清爽|软糯|酥脆|解馋|下饭|清楚|清晰|结实|耐用|暖和|保暖|轻便)"
    r"(?:了|啊|呀|哦|吧|!|,|。|~|$)"
)
"""A good quality said with a degree word, nothing turning against it."""

# What may go wrong with a thing one bought (broken, stuck, leaking, lost, irritating, a
# letdown). Negated after a degree or frequency adverb it is praise: 屏幕都没碎, 一次都没坏过,
# 一点都不卡, 还不伤头发, 居然没哭. Left out on purpose: words whose absence is itself a
# complaint in some sector (不烫: cold food; 不辣; 没变: a parcel's tracking).
_FLAW = (r"(?:碎|裂|坏|破|卡|漏|丢|掉(?:色|漆|毛|链子|线)|起球|起毛|变形|褪色|生锈|过敏|伤|疼|痛"
         r"|勒|磨(?:脚|坏|破|损)|腻|腥|膻|油|毛躁|哭|闹|晕车|翻车|踩雷|失望|后悔"
         r"|出过?(?:错|问题|故障|毛病)|死机|断(?:网|电|过)|塌|皱|缩水|异味|色差"
         r"|进过?水|划痕|磨损|异响)")

NO_FLAW = re.compile(
    r"(?:都|也|从来|从没|一直|一次都|一点点?(?:都|也)?|完全|丝毫|居然|竟然|还|再也|根本|压根"
    r"|而且|并且)(?:没有?|不|无)(?:怎么|再|太)?" + _FLAW
    # nothing at all wrong: 一点事没有, 没有任何异味, 毫发无损
    + r"|一点事(?:都|也)?没有"
    r"|(?:一点|一丝|一道|任何|啥)(?:问题|毛病|异味|色差|瑕疵|故障|不适|副作用|划痕|磨损|异响)"
    r"(?:都|也)?(?:没有?|无)"
    r"|没有?任何(?:问题|毛病|异味|色差|瑕疵|故障|不适|副作用|划痕|磨损|异响)|毫发无损|完好无损"
    r"|完好如初|安然无恙"
)
"""Praise told through a negated flaw (the thing held up): nothing went wrong."""

HYPERBOLE = (
    # a pleasure or liking raised to excess: 好吃到哭, 美哭了, 爱死了, 香得要死, 开心到飞起
    re.compile(r"(?:好吃|好喝|好看|好听|好用|好玩|美|香|甜|爽|帅|可爱|萌|馋|惊艳|舒服|过瘾|上头"
               r"|感动|开心|幸福)(?:死(?:了|我了|人)|哭了?|疯了?|爆了?|炸了?|麻了|翻了?|化了|飞起"
               r"|到(?:哭|爆|炸|飞起|起飞|不行|想哭|流泪|跺脚|离谱|犯规|尖叫|窒息)"
               r"|得(?:要死|要命|不行|流泪|想哭))|爱(?:死|疯|爆|了爱了|住了)"),
    # laughter: 笑死, 笑得我肚子疼 (not 可笑, 冷笑, 嘲笑)
    re.compile(r"(?<![可嘲冷苦讥耻见\[])笑(?:死|疯|喷|裂|哭|到|得[^,.!?;。]{0,4}"
               r"(?:肚子疼|岔气|流泪|眼泪|不行|打滚|头掉|停不下来))"),
    # praise in slang: 吹爆, 杀疯了, 画面炸裂, 绝了 (not the sarcastic 也是绝了), …，牛
    re.compile(r"(?:吹|圈)爆|杀疯|赢麻|(?<=[^,.!?~\s。是真拒隔断灭杜谢根/:])绝了|绝绝子|yyds|(?<!得)真香|宝藏|(?:太|真|最|好|超|很)懂我|戳中|好哭|犒劳"
               r"|(?:画面|演技|颜值|音效|特效|效果|舞台|口感|味道|唱功|现场|性价比|剧情|配色|质感"
               r"|手感)[^,.!?;。]{0,2}(?:炸裂|爆炸|封神|天花板|无敌|拉满|在线)"
               r"|(?:^|[,.!~\s。]|太|真|好|很|超|是真)牛(?:啊|了|哇|呀)?(?=[,.!~\s。]|$)"
               r"|(?:^|[,.!~\s。])(?:爽|香|值|稳|赞)(?:了|啊|呀|哦)?(?=[,.!~。]|$)"),
    # popularity: 人气爆炸, 爆款, 一抢而空, 排队排到门外
    re.compile(r"人气(?:爆炸|爆棚|爆表|超高|很旺)|爆满|爆款|秒空|一抢而空|排(?:长)?队排到"),
    # won over by a work or a product: 被这首歌炸到了, 被广告曲洗脑了, 被冰淇淋承包了
    re.compile(r"被(?!自己)[^,.!?;。]{1,12}(?:炸到|惊艳到?|美到|帅到|甜到|萌到|戳中|圈粉|种草|安利|洗脑"
               r"|治愈|承包|征服|感动|笑到|香到|馋哭|燃到|暖到)"),
    # the writer's body or the weather raised to excess (累死了, 热死了, 困成狗), in a post
    # that says nothing of waiting or of a service that caused it (等外卖等到饿死了 is a
    # complaint): the feeling is about the day, not about the brand
    re.compile(r"^(?!.*(?:等|排队|催|找|电话|客服|配送|送餐|到货|发货|物流|慢|还没|不到))"
               r".*(?<!\[)(?:累|热|冷|困|饿|渴|晒|冻|忙|撑)(?:死(?:了|我了|人了?)|疯了?|瘫了?|趴了?"
               r"|晕了?|化了|成狗)"),
    # moved to tears by a work (看完这部剧哭成狗, 追完…哭得稀里哗啦, 电影泪目): the tears are
    # what the work is praised for
    re.compile(r"(?:剧(?!烈)|电影|片子|综艺|番剧|小说|演唱会|纪录片|动画)[^。!?]{0,16}"
               r"(?:哭成狗|哭得|哭惨|哭死|哭肿|哭湿|泪目|泪崩|哭到)"
               r"|(?:哭成狗|哭得|哭惨|哭死|哭肿|哭湿|泪目|泪崩|哭到)[^。!?]{0,16}"
               r"(?:剧(?!烈)|电影|片子|综艺|番剧|小说|演唱会|纪录片|动画)"),
    # hooked on it: 安利中毒, 中毒了，连喝一周, 单曲循环
    re.compile(r"(?:安利|种草|入坑)[^,.!?;。]{0,6}中毒|中毒了?,?[^,.!?;。]{0,8}(?:停不下来"
               r"|连(?:喝|吃|刷|看|听|买)|天天|每天|又(?:下单|买|入))"
               r"|(?:吃|喝|刷|看|追|听|买)得?停不下来|单曲循环"),
)
"""Hyperbole and slang that praise: the excess is of pleasure, laughter or popularity."""

RELIEF = re.compile(
    r"续命|救(?:我|了我)(?:狗命|一命|老命)|救了我|救命稻草|回血|满血复活|(?<![没不])缓过来|治愈"
    r"|(?<![不没难敢])(?<!不令人)(?<!不让人)(?:放心|安心)(?![吗么?不])"
    r"|多亏|(?:还好|幸好|幸亏|好在|得亏)有|(?:幸好|幸亏|好在|得亏)[^,.!?;。]{1,8}有"
    # the writer's state mended by the product (吃完心情好一点了, 喝了两口舒服多了) or got
    # through with it (靠一杯咖啡撑过了一天)
    r"|(?:吃|喝|用|泡|听|看)(?:完|了)[^,.!?;。]{0,8}(?:好(?:一?点|些|多)了|舒服(?:一?点|些|多)了)"
    r"|靠[^,.!?;。]{1,10}撑(?:过|着|下来|住)"
)
"""The brand or its product as what got the writer through something (加班到十点，累死了，
还好楼下面馆还开着; 热死了，来一杯冰沙救我狗命): the bad feeling is about the day, not the
brand."""

BLOCK = re.compile(
    # rhetorical or exasperated questions (凭什么, 到底, 怎么还不)
    r"凭什么|为什么|为啥|难道|到底|究竟|怎么回事|怎么还|还要等|还不(?![错赖]|" + _FLAW + ")"
    r"|还没(?!" + _FLAW + ")|什么鬼|有意思吗|要脸"
    r"|良心不会痛|有病|呵呵|无语|受不了|崩溃|气死|恶心|垃圾|坑|骗|忽悠|套路|投诉|曝光|差评|维权"
    r"|退款|赔偿|举报|避雷|踩雷|千万别|别买|怎么办|后悔|失望|心寒"
    # bad corporate news (处罚, 召回, 裁员)
    r"|处罚|罚款|罚单|立案|调查|下架|召回|暴跌|亏损|裁员|倒闭|违规|违法|不合格|约谈|被查|道歉"
    r"|事故|问题"
)
"""Any of these and the post is not read as a plain act: it may well be a complaint."""

NO_LETDOWN = re.compile(r"(?:没有?|从没有?|从来没有?|并没有?|不会|不)(?:再)?"
                        r"(?:踩雷|踩坑|翻车|被坑|被骗|上当|失望|后悔)")
"""A letdown denied (这次没踩雷, 一点都不后悔, 没被坑) blocks nothing: the grievance and
lexicon readings drop such a word too (negated)."""

ELSEWHERE = re.compile(
    # a purchase or an everyday use told as done (买了, 点了份, 喝了, 逛了, 下单)
    r"(?<![不没别])(?:(?:买|点|订|叫|寄|喝|吃|逛|坐|刷|充|办|租|换|挑|囤)了"
    r"|(?:买|点|订|叫)了?(?:个|份|杯|根|束|瓶|碗|盒|袋|箱|块|点)|下单"
    # going somewhere to do it, or doing it at a place (去必胜客庆祝, 在全家买了, 在肯德基里等雨停)
    r"|去了?趟?[^,.!?;。]{1,6}(?:吃|喝|逛|买|看|庆祝)"
    r"|在[^,.!?;。]{1,8}(?:买|点|吃|喝|等|坐|逛|碰到|遇到|看|排队))"
)
"""The writer buying or using something, told as an everyday event with no judgement of it
(考试挂了心情超差，点了份麦当劳安慰一下自己; 堵车…烦死了). When the model leans negative and
nothing else in the post is read (no complaint form, no harm, no lexicon term, no turn), the
feeling is about something else: the complaint grammar (``rules.complaints``) is the
reading of what a post says against the product or the service, and it found nothing."""

WHY = re.compile(r"安慰|犒劳|奖励(?:一下)?自己|庆祝|压压?惊|解解?馋|顺便|顺手|打发时间|消磨")
"""Why the product is in the story: to console or reward the writer, to celebrate, to pass
the time, or only in passing (买了杯奶茶安慰一下自己, 顺便吃了个冰淇淋). It then stands beside
a feeling about the writer's day, not under it; without such a word a purchase told beside
a bad feeling may well be what the feeling is about."""

TURN = re.compile(r"结果|但是|可是|不过|却|竟然|居然|收到|发现|才知道|怎么|还是没|一直|根本"
                  r"|说好|明明|本来")
"""A turn or a surprise: the story of a purchase that went wrong (买了…结果, 收到发现): not
an everyday mention, even when no complaint form is read."""

ACTS = (("询问", ASK), ("通告", ANNOUNCE), ("推广", PROMOTE), ("称赞", PRAISE), ("称赞", GOOD),
        *(("夸张", rx) for rx in HYPERBOLE), ("没出毛病", NO_FLAW), ("解围", RELIEF),
        ("他事", WHY))

FIGURATIVE = frozenset(("夸张", "没出毛病"))
"""Acts that explain a stray weak harm or grievance cue instead of being blocked by it: the
cue *is* the figure of speech (画面炸裂, 安利中毒) or the negated flaw (摔下去屏幕都没碎)."""

ANCHORS = (
    ("请问", "想问", "问一下", "求问", "求助一下", "求推荐", "求科普", "有没有", "有人知道",
     "谁知道", "什么时候", "几点", "多久", "多长时间", "几天", "哪", "多少钱", "怎么", "吗", "么",
     "真的"),
    ("发布", "宣布", "公布", "通报", "公告", "官方", "通知", "财报", "营收", "同比", "签约",
     "签署", "上线", "入选", "获评", "荣获", "开业", "开张", "开通", "延长营业", "恢复营业",
     "调整为", "起"),
    ("抽", "满", "半价", "买一送一", "折", "优惠", "特价", "限时", "秒杀", "包邮", "福利",
     "上新", "新品上市", "免费领", "领券", "直降", "兑换券", "代金券", "转发", "关注"),
    ("好评", "五星", "点赞", "感谢", "谢谢", "推荐", "回购", "安利", "强推", "必须收", "绝配",
     "yyds", "良心", "靠谱", "给力", "满意", "贴心", "太好"),
    ("好吃", "好喝", "好用", "好看", "好听", "好玩", "舒服", "方便", "划算", "实惠", "过瘾", "香",
     "爽", "赞", "棒", "省心", "给力", "贴心", "可爱", "惊艳", "干净", "暖心", "专业", "耐心",
     "细心", "周到", "新鲜", "好闻", "顺滑", "清爽", "软糯", "酥脆", "解馋", "下饭", "清楚",
     "清晰", "结实", "耐用", "暖和", "保暖", "轻便"),
    ("好吃", "好喝", "好看", "好听", "好用", "好玩", "美", "香", "甜", "爽", "帅", "可爱", "萌",
     "馋", "惊艳", "舒服", "过瘾", "上头", "感动", "开心", "幸福", "爱"),
    ("笑",),
    ("爆", "杀疯", "赢麻", "绝", "yyds", "真香", "宝藏", "懂我", "戳中", "好哭", "犒劳", "炸裂",
     "封神", "天花板", "无敌", "拉满", "在线", "牛", "爽", "香", "值", "稳", "赞"),
    ("人气", "爆满", "爆款", "秒空", "一抢而空", "排"),
    ("被",),
    ("累", "热", "冷", "困", "饿", "渴", "晒", "冻", "忙", "撑"),
    ("哭成狗", "哭得", "哭惨", "哭死", "哭肿", "哭湿", "泪目", "泪崩", "哭到"),
    ("中毒", "停不下来", "单曲循环"),
    ("碎", "裂", "坏", "破", "卡", "漏", "丢", "掉", "起球", "起毛", "变形", "褪色", "生锈", "过敏",
     "伤", "疼", "痛", "勒", "磨", "腻", "腥", "膻", "油", "毛躁", "哭", "闹", "晕车", "翻车",
     "踩雷", "失望", "后悔", "错", "问题", "故障", "毛病", "死机", "断", "塌", "皱", "缩水", "异味",
     "色差", "瑕疵", "事", "不适", "副作用", "无损", "无恙", "完好", "进水", "进过水", "划痕",
     "磨损", "异响"),
    ("续命", "救", "回血", "满血复活", "缓过来", "治愈", "放心", "安心", "还好", "幸好",
     "幸亏", "多亏", "好在", "得亏", "好点了", "好一点了", "好些了", "好多了", "舒服点了",
     "舒服一点了", "舒服些了", "舒服多了", "撑"),
    ("安慰", "犒劳", "奖励", "庆祝", "压惊", "压压惊", "解馋", "解解馋", "顺便", "顺手", "打发时间",
     "消磨"),
)
"""Per act, words one of which every match contains: one Aho-Corasick pass finds which acts
can match at all, and only their patterns run (most posts run none; a test checks that no
match lacks its anchor)."""


def _anchor_automaton(first: int, last: int) -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    masks: dict[str, int] = {}
    for i in range(first, last):
        for w in ANCHORS[i]:
            masks[w] = masks.get(w, 0) | (1 << i)
    for w, mask in masks.items():
        auto.add_word(w, mask)
    auto.make_automaton()
    return auto


_PLAIN = 4
"""ACTS[:_PLAIN] are the plain acts (a question, a notice, a promotion, thanks); the rest
(hyperbole, a negated flaw, relief, a good quality) are read only in a post the model
leans negative on: they exist to correct that, and skipping them elsewhere saves most of
their cost."""
_PLAIN_ANCHORS = _anchor_automaton(0, _PLAIN)
_MORE_ANCHORS = _anchor_automaton(_PLAIN, len(ACTS))
_FIGURATIVE_MASK = sum(1 << i for i, (name, _) in enumerate(ACTS) if name in FIGURATIVE)
_MENTION = re.compile(r"@[^\s:,.!?;。]+")
_ACT_SEARCH = tuple(Lead(rx).search for _name, rx in ACTS)
"""Each act's ``search``, from the first place a match can start (``rules.rxlead``)."""
_ACT_NAMES = tuple(name for name, _rx in ACTS)
_BLOCK = Lead(BLOCK)
_LETDOWN = Lead(NO_LETDOWN)

ACT_NEGATIVE_ODDS = 0.2
"""Factor on the odds of negative for a post read as one of the acts (see the module
docstring and docs/sentiment.md for how it was chosen)."""


def anchor_keys() -> list[tuple[str, bool, int]]:
    """The anchors ``read_acts`` looks for, for a caller that scans a text once for
    several readings (``rules.scoring.Scanner``): ``(word, plain, mask)``, ``plain``
    for the plain acts' anchors, ``mask`` the acts (bits of ``ACTS``) it anchors."""
    return ([(str(w), True, m) for w, m in _PLAIN_ANCHORS.items()]
            + [(str(w), False, m) for w, m in _MORE_ANCHORS.items()])


def _bits(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first: the acts a post's anchors name (one or two
    of the sixteen; a test of each bit cost ~1 µs a post read)."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def mention_spans(norm: str) -> list[tuple[int, int]]:
    """Where the @names are in ``norm``: what ``read_acts`` cuts out of a text."""
    return [m.span() for m in _MENTION.finditer(norm)]


def read_acts(norm: str, weak_cue: bool = False, leaning_negative: bool = True,
              anchored: tuple[int, int] | None = None, *,
              mentionless: bool = False) -> tuple[str, ...]:
    """The acts ``norm`` (``normalise_for_scoring(text).lower()``) performs, by name, empty
    when it performs none or when something in it blocks the reading. ``weak_cue``: the
    post has a harm or grievance cue too weak to report harm or a complaint; only the
    ``FIGURATIVE`` acts, which explain such a cue, are read then. ``leaning_negative``:
    the model would call the post negative; otherwise only the plain acts are read.
    ``anchored``: the masks of the plain and the other anchors in ``norm``, found by
    the caller's own pass (``anchor_keys``); for a text holding "@", only if they were
    found outside its @names (``mentionless``: ``rules.scoring.Scanner.scan``)."""
    if not norm or (weak_cue and not leaning_negative):
        return ()
    if "@" in norm:  # a user's name (@此鱼需治愈, @天使狗狗好可爱) says nothing of the post
        norm = _MENTION.sub(" ", norm)
        if not mentionless:
            anchored = None  # found in the text with the names
    mask = 0
    if anchored is not None:
        mask = (0 if weak_cue else anchored[0]) | (anchored[1] if leaning_negative else 0)
    else:
        if not weak_cue:
            for _end, m in _PLAIN_ANCHORS.iter(norm):
                mask |= m
        if leaning_negative:
            for _end, m in _MORE_ANCHORS.iter(norm):
                mask |= m
    if leaning_negative and weak_cue:
        mask &= _FIGURATIVE_MASK
    if not mask:
        return ()
    found = tuple(dict.fromkeys(_ACT_NAMES[i] for i in _bits(mask) if _ACT_SEARCH[i](norm)))
    if not found:
        return ()
    # A negated flaw is not a bad word: 一点都不后悔 and 没有任何问题 are not blocked by
    # 后悔 and 问题.
    if "没出毛病" in found:
        norm = NO_FLAW.sub(" ", norm)
    if _BLOCK.search(NO_LETDOWN.sub(" ", norm) if _LETDOWN.search(norm) else norm):
        return ()
    # 他事 is anchored on the rare reason (WHY), then needs the purchase told (ELSEWHERE)
    if "他事" in found and (TURN.search(norm) or not ELSEWHERE.search(norm)):
        found = tuple(name for name in found if name != "他事")
    return found
