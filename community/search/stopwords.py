"""Function words that carry no intent in a customer question.

Question words (为什么/怎么/什么时候 …) are *not* here: they tell a "why"
question from a "how" or "when" one, and synonyms.txt folds their variants.

Removed from the word channels only (the character channels keep every
character; BM25's idf already damps the frequent ones there)."""

from __future__ import annotations

ZH_STOPWORDS = frozenset(
    """
    的 了 着 过 吗 呢 吧 啊 呀 哦 哈 嘛 啦 么 哪 那 这 这个 那个 就 都 也 还 又 很 太 吧
    我 我们 你 你们 您 他 她 它 他们 自己 咱 俺
    是 有 在 和 与 及 或 或者 跟 把 被 给 让 对 从 向 到 为 于
    请 请问 问 问下 问一下 想 想问 想知道 知道 一下 下 一 个 些 点 一点 个人
    怎么样 怎 什么 啥 哪里 哪儿 哪个 多少 几
    能 能不能 可以 可不可以 会 会不会 要 需要 应该 得
    你好 您好 谢谢 好 好的 嗯 呃 喂 哎 诶 亲 客服 小姐 先生 麻烦
    吗吗 呢呢 现在 已经 因为 所以 但是 可是 然后 如果 的话
    """.split()
)

EN_STOPWORDS = frozenset(
    """
    a an the this that these those there here it its it's i i'm im me my mine myself we us our
    you your yours u ur he she him her his they them their
    is am are was were be been being do does did doing done have has had having
    can could would should will shall may might must
    to of in on at by for from with about into onto over under as than then so
    and or but if because while when where what which who whom why how
    not no yes please pls plz thanks thank hi hello hey ok okay
    just also still yet already again any some all very really much many more most
    get got getting go going want wanted need needed like know let s t d ll m re ve
    one someone something anything
    """.split()
)

STOPWORDS = ZH_STOPWORDS | EN_STOPWORDS
