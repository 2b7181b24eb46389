"""Reply -> WeChat wire: passive XML (text or news) and customer-service message JSON.

WeChat has no buttons: passive replies number the choices ("回复 1 …", mapped back by
the pipeline); customer-service messages make each choice a ``weixin://bizmsgmenu``
link whose menu id carries the choice's action.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

from bot.core.i18n import Gettext
from bot.core.messages import Card, Reply
from bot.core.render import numbered_text

# WeChat's limit for one text message (bytes of UTF-8)
MAX_TEXT_BYTES = 2048
# news articles per passive reply: 1 when answering a member's message, 8 for events
MAX_ARTICLES_MESSAGE = 1
MAX_ARTICLES_EVENT = 8
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SAFE_ACTION = re.compile(r"^[A-Za-z0-9_:.\-]{1,128}$")


def clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry."""
    return _XML_INVALID.sub("", text)


def cdata(text: str) -> str:
    """A CDATA section that stays one even when the text contains ``]]>``."""
    return "<![CDATA[" + clean(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def fit(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """Cut ``text`` to ``limit`` UTF-8 bytes on a character boundary, marking the cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


def text_xml(to_user: str, from_user: str, content: str, *, now: int | None = None) -> str:
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{now or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(fit(content))}</Content></xml>"
    )


def news_xml(
    to_user: str, from_user: str, cards: list[Card], *, fallback_text: str = "", now: int | None = None
) -> str:
    items = "".join(
        f"<item><Title>{cdata(c.title)}</Title><Description>{cdata(c.description or fallback_text)}</Description>"
        f"<PicUrl>{cdata(c.image_url)}</PicUrl><Url>{cdata(c.url)}</Url></item>"
        for c in cards
    )
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{now or int(time.time())}</CreateTime><MsgType><![CDATA[news]]></MsgType>"
        f"<ArticleCount>{len(cards)}</ArticleCount><Articles>{items}</Articles></xml>"
    )


def passive_xml(
    reply: Reply, *, to_user: str, from_user: str, _: Gettext, max_articles: int = MAX_ARTICLES_MESSAGE
) -> str:
    """One passive reply: a news message when the reply is cards only (and they fit),
    otherwise text with numbered choices and card links."""
    if reply.cards and not reply.choices and len(reply.cards) <= max_articles:
        return news_xml(to_user, from_user, reply.cards, fallback_text=reply.text)
    return text_xml(to_user, from_user, numbered_text(reply, _))


def menu_link(label: str, action: str) -> str:
    """A tappable customer-service menu line; tapping sends ``label`` with ``bizmsgmenuid``."""
    # WeChat's documented form carries the label as-is; drop what would end the attribute
    content = re.sub(r'[&"<>\s]+', " ", label).strip()
    return f'<a href="weixin://bizmsgmenu?msgmenucontent={content}&msgmenuid={action}">{html.escape(label)}</a>'


def custom_message(openid: str, reply: Reply, _: Gettext) -> dict[str, Any]:
    """The JSON body of ``message/custom/send`` for one reply."""
    if reply.cards and not reply.choices and len(reply.cards) == 1:
        card = reply.cards[0]
        article = {
            "title": card.title,
            "description": card.description or reply.text,
            "url": card.url,
            "picurl": card.image_url,
        }
        return {"touser": openid, "msgtype": "news", "news": {"articles": [article]}}
    linkable = all(_SAFE_ACTION.match(c.action) for c in reply.choices)
    if reply.choices and linkable:
        body = numbered_text(Reply(text=reply.text, cards=reply.cards), _)
        links = "\n".join(menu_link(c.label, c.action) for c in reply.choices)
        # the links must survive the cut: shorten the body, never the menu
        room = MAX_TEXT_BYTES - len(links.encode("utf-8")) - 2
        content = f"{fit(body, max(room, 0))}\n\n{links}" if room > 16 else fit(f"{body}\n\n{links}")
    else:
        content = fit(numbered_text(reply, _))
    return {"touser": openid, "msgtype": "text", "text": {"content": clean(content)}}
