"""An offer as part of an answer: the body template rendered safely, then a Card.

Marketers write the body as a jinja2 template; it runs in a sandbox (no attribute
tricks, no imports) with autoescape, over a plain dict of member fields, never the
ORM object. Channels show card text as plain text, so the HTML result is reduced to
text (tags stripped, entities decoded) before it goes out.
"""

from __future__ import annotations

import secrets
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bot.core.messages import Card, Choice, Reply
from community.offers.models import Offer

MAX_BODY_CHARS = 160  # one short paragraph: the card description
MAX_TEMPLATE_CHARS = 2000

_env = SandboxedEnvironment(autoescape=True)


def member_fields(*, name: str, locale: str, channel: str, tags: list[str]) -> dict[str, Any]:
    """What a body template may use: ``member.name``, ``member.plan`` (from a ``plan:`` tag) …"""
    fields: dict[str, Any] = {"name": name, "locale": locale, "channel": channel, "tags": list(tags)}
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key.isidentifier() and key not in fields:
            fields[key] = value
    return fields


def check_template(body: str) -> str | None:
    """An error message if the body is not a usable template, else None."""
    if len(body) > MAX_TEMPLATE_CHARS:
        return f"at most {MAX_TEMPLATE_CHARS} characters"
    try:
        _env.from_string(body).render(member=member_fields(name="x", locale="zh_CN", channel="web", tags=[]))
    except TemplateError as exc:
        return str(exc)
    return None


def render_body(offer: Offer, member: dict[str, Any]) -> str:
    """Plain text of the body for this member; empty if the template fails."""
    try:
        html = _env.from_string(offer.body).render(member=member)
    except TemplateError:
        return ""
    text = " ".join(Markup(html).striptags().split())
    return text if len(text) <= MAX_BODY_CHARS else text[: MAX_BODY_CHARS - 1] + "…"


def new_token() -> str:
    return secrets.token_urlsafe(12)


def tracked_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/o/{token}"


def attach_offer(reply: Reply, offer: Offer, token: str, body: str, base_url: str) -> None:
    """Add the offer to the answer: a card (tracked link when the offer has a URL) and,
    for action offers, a button whose press records the acceptance."""
    url = tracked_url(base_url, token) if offer.url else ""
    reply.cards.append(Card(title=offer.title, description=body, url=url))
    if offer.action_label:
        reply.choices.append(Choice(label=offer.action_label, action=f"offer:{token}"))
