"""Complaint intent: is the member complaining (an urgent ticket for a person), asking
*about* complaints (answered from the knowledge base), or neither?

Before, any message containing 投诉/complain became an urgent ticket, so "怎么查询投诉的处理
进度？" (a knowledge item's own title), "投诉渠道有哪些" and "how to complain about roaming
fees" reached an agent instead of their answer. The rules here, in order:

1. an expression of complaint in the first person or addressed to us ("我要投诉", "投诉你们",
   "I want to complain", "I'm filing a complaint") is a complaint;
2. a regulator or the press named as a threat ("再不解决就打12300", "我去工信部告你们",
   "I'll report you to the regulator") is a complaint; a question about a regulator
   ("12300是什么") is not;
3. anger at the service ("太垃圾了", "骗子公司", "ridiculous!!!") is a complaint, except words
   that name a thing ("垃圾短信" is spam SMS);
4. a complaint word with a question about the process (how, where, which, progress,
   channel, number, "?") is a question about complaints;
5. a bare complaint word ("投诉", "complaint") is a complaint: the member wants a person.

Measured on tests/data/complaint_intent.tsv (``bench/complaints.py``; bench/RESULTS.md).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

Intent = Literal["complaint", "question", "none"]

# complaint words (simplified and traditional, English stems)
COMPLAINT_WORDS = ("投诉", "投訴", "申诉", "申訴", "举报", "舉報", "客诉", "客訴", "complain", "grievance")
# first person or addressed to us: the member is complaining
_FIRST_PERSON_ZH = re.compile(
    r"(我|俺|咱)(要|想|就要|必须|一定要|必須|坚决|堅決|现在就|現在就|得|会|會|已经|已經|正式)?\s*"
    r"(投诉|投訴|申诉|申訴|举报|舉報|客诉|客訴|去投诉|去投訴|起诉|起訴|告你)"
    r"|^(投诉|投訴|举报|舉報)(你们|你們|你|贵公司|貴公司|这家|這家|这个|這個|客服|营业员|營業員|营业厅|營業廳|装维|裝維)"
    r"|[，,。！!]\s*(投诉|投訴|举报|舉報)(你们|你們|你|客服)"
    r"|(要|必须|必須|坚决|堅決|一定|强烈|強烈)(投诉|投訴|举报|舉報)"
    r"|(给|給|帮|幫)我(转|轉)?(投诉|投訴)"
)
_FIRST_PERSON_EN = re.compile(
    r"\b(i|we)\s*('m|'d|'ll| am| are| will| would| want to| wanna| need to| have to| must| shall| 'd like to| would like to| like to)?"
    r"\s*(like to |going to |gonna |want to |need to )?(file |lodge |make |raise |submit )?(a )?(formal )?complain"
    r"|\bthis is a (formal )?complaint\b|\bcomplaint against\b|\bfile a complaint (against|about) you"
    r"|\bi('m| am) (filing|lodging|making|raising) a (formal )?complaint"
)
# regulators, consumer bodies, courts and the press
_AUTHORITY = re.compile(
    r"工信部|工業和信息化部|工业和信息化部|12300|通管局|通信管理局|消协|消協|消费者协会|消費者協會|12315|"
    r"通传会|通傳會|\bncc\b|消基会|消基會|媒体|媒體|记者|記者|曝光|法院|起诉|起訴|律师|律師|315|"
    r"\bregulator\b|\bombudsman\b|\bfcc\b|\bofcom\b|\bmiit\b|\bconsumer (council|association|protection)\b|"
    r"\bthe press\b|\bjournalist|\blawyer|\bsue\b|\bcourt\b|\bsmall claims\b"
)
# a threat around an authority: going there, reporting, "or else"
_THREAT = re.compile(
    r"打|告|找|去|向|反映|举报|舉報|投诉|投訴|曝光|上诉|上訴|起诉|起訴|再不|否则|否則|不然|就|等着|等著|"
    r"\b(will|i'll|i will|going to|gonna|until|unless|or else|otherwise|report|escalate|contact|call|take (this|you))\b"
)
_ANGER_ZH = re.compile(
    r"垃圾(?!短信|簡訊|简讯|信息|訊息|邮件|郵件|电话|電話|桶|分类|分類)|骗子|騙子|坑人|坑爹|太坑|黑心|"
    r"欺诈|欺詐|诈骗(?!电话|電話|短信|簡訊)|詐騙(?!電話|簡訊)|乱扣|亂扣|偷扣|强制扣费|強制扣費|"
    r"气死|氣死|受够|受夠|忍无可忍|忍無可忍|太差劲|太差勁|差劲|差勁|烂透|爛透|什么破|什麼破|破网|破網|"
    r"滚|滾|无耻|無恥|欺负人|欺負人|耍我|糊弄|敷衍|没人管|沒人管|不讲理|不講理|霸王条款|霸王條款|"
    r"太过分|太過分|岂有此理|豈有此理|退钱|退錢|还我钱|還我錢"
)
_ANGER_EN = re.compile(
    r"\b(scam|scammers?|rip[- ]?off|ripped off|ridiculous|unacceptable|disgusting|outrageous|furious|"
    r"fed up|sick of|worst (service|company|operator|network)|terrible service|useless (service|company)|"
    r"thieves|stealing my|robbed|pathetic|shameful|fraud(ulent)?|appalling)\b"
)
_EXCLAIM = re.compile(r"[!！]{3,}")
# dissatisfaction said outright; a complaint unless the message asks how to complain
_UNHAPPY = re.compile(
    r"什么态度|什麼態度|态度(很|太|超|非常|极其|極其)?(差|恶劣|惡劣|不好)|態度(很|太|超|非常)?(差|惡劣|不好)|"
    r"不满意|不滿意|受不了|太扯|骗人|騙人|\b(unhappy|dissatisfied|(is|are) a joke|done with|escalated?|"
    r"reporting you|third time|fourth time)\b"
)
# a question about the complaint process
_ABOUT_ZH = re.compile(
    r"怎么|怎麼|如何|哪里|哪裡|哪儿|哪些|哪个|哪個|什么|什麼|多久|几天|幾天|进度|進度|渠道|方式|流程|"
    r"电话|電話|热线|熱線|号码|號碼|几号|幾號|专线|專線|入口|结果|結果|查询|查詢|处理|處理|时限|時限|能否|可以吗|可以嗎|能不能|"
    r"吗|嗎|么|呢|[?？]"
)
_ABOUT_EN = re.compile(
    r"\b(how|where|what|which|when|who|can i|could i|do i|is there|are there|status|progress|channel|"
    r"number|process|procedure|steps|form|policy|track|check)\b|\?"
)


# an English sentence that opens as a question ("How do I file a complaint?") asks about the process
_EN_QUESTION_START = re.compile(r"^(how|where|what|which|when|who|can|could|do|does|is|are|should|may)\b")


def _normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def classify(text: str) -> Intent:
    """``complaint`` (an urgent ticket), ``question`` (about complaints: answer it), ``none``."""
    return _classify(text)


@lru_cache(maxsize=4096)  # every message is asked; FAQ questions repeat word for word
def _classify(text: str) -> Intent:
    t = _normalize(text)
    if not t:
        return "none"
    has_word = any(w in t for w in COMPLAINT_WORDS)
    if _FIRST_PERSON_ZH.search(t) and not re.match(r"^(怎么|怎麼|如何|哪里|哪裡|去哪|在哪)", t):
        return "complaint"
    if _FIRST_PERSON_EN.search(t) and not _EN_QUESTION_START.match(t):
        return "complaint"
    authority = _AUTHORITY.search(t)
    if authority:
        rest = t[: authority.start()] + " " + t[authority.end() :]
        asking = (_ABOUT_ZH.search(t) or _ABOUT_EN.search(t)) and not re.search(
            r"再不|否则|否則|不然|\bor else\b|\bunless\b|\buntil\b", t
        )
        if _THREAT.search(rest) and not asking:
            return "complaint"
        if not asking and has_word:
            return "complaint"
    if _ANGER_ZH.search(t) or _ANGER_EN.search(t) or _EXCLAIM.search(t):
        return "complaint"
    asking = bool(_ABOUT_ZH.search(t) or _ABOUT_EN.search(t) or _EN_QUESTION_START.match(t))
    if has_word:
        return "question" if asking else "complaint"
    if _UNHAPPY.search(t) and not re.search(r"怎么|怎麼|如何|\bhow\b", t):
        return "complaint"
    return "none"


def is_complaint(text: str) -> bool:
    return classify(text) == "complaint"
