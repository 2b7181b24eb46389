"""Forwarded answers on the web: ``/f/<token>``, pages that link previewers cannot farm.

- ``GET /f/<token>`` shows the answer and records nothing that pays. WeChat fetches every
  link it shows to draw the preview, crawlers and prefetchers fetch what they see, and a GET
  must be safe: none of them is a person who read the answer.
- ``POST /f/<token>/read`` ("this helped me") and ``POST /f/<token>/rate`` (准确 / 不准确)
  are what a reader does on the page; either records the engagement, and the rules of
  :meth:`gamification.service.Gamification.on_forward_engaged` decide whether the sharer is paid: one
  engagement per person (a member, else the device: address + browser, so a cleared cookie is
  the same visitor), never the sharer's own accounts or devices, a few devices per network a
  day, the daily caps and the hold for unverified readers.
- Both posts carry the form token of the visitor's web chat session cookie (the GET issues the
  cookie when there is none; ``bot.web.chat_session``) and must come from the service's own
  pages (``Origin``, else ``Referer``, scheme included): another site's page cannot make a
  visitor's browser pay anyone (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.models import ChannelAccount, Member
from bot.core.settings import Settings
from bot.web import bad_request, render
from bot.web.chat_session import member_csrf_ok, member_csrf_token, page_session, session_member_id, set_session_cookie
from bot.web.client import device_fingerprint, network_fingerprint
from gamification.models import ForwardEngagement, ForwardLink, ForwardRating
from gamification.service import GAMIFICATION, ForwardOutcome

REFUSED = {
    "form": N_("This form could not be checked. Open the shared answer again and try once more."),
    "own": N_("You shared this answer yourself, so your own visit does not count."),
    "other": N_("You already opened this answer through another friend's link."),
}


@dataclass(frozen=True)
class Reader:
    """Who is reading a forwarded answer, as the anti-farming rules see them."""

    key: str  # m:<member id> or d:<device fingerprint>: one engagement per key and item
    member_id: int | None
    device: str
    network: str


async def reader_of(request: web.Request, link: ForwardLink, settings: Settings) -> Reader:
    """An SMS forward names its recipient, a web chat session its member; anyone else is their
    device (a cleared cookie does not make a new visitor)."""
    device = device_fingerprint(request, settings.secret_key)
    network = network_fingerprint(request, settings.secret_key)
    member_id: int | None = None
    if link.channel == "sms" and link.target:
        account = await ChannelAccount.get_or_none(channel="sms", external_id=link.target)
        member_id = account.member_id if account else None
    if member_id is None:
        member_id = await session_member_id(request, settings)
    key = f"m:{member_id}" if member_id is not None else f"d:{device}"
    return Reader(key, member_id, device, network)


async def _link_and_item(request: web.Request) -> tuple[ForwardLink, Any] | None:
    """The link and its item while published (the knowledge base in memory holds exactly those)."""
    token = request.match_info["token"]
    if not (8 <= len(token) <= 32):
        return None
    link = await ForwardLink.get_or_none(token=token)
    item = await request.app[SERVICES].kb.get(link.item_id) if link else None
    return (link, item) if link and item else None


def _missing(request: web.Request) -> web.Response:
    return render(request, "forward_missing.html", status=404)


def _refused(request: web.Request, token: str, why: str) -> web.Response:
    resp = render(request, "forward_refused.html", status=403, token=token, message=REFUSED[why])
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def _engagement(link: ForwardLink, reader: Reader) -> ForwardEngagement | None:
    return await ForwardEngagement.get_or_none(item_id=link.item_id, recipient_key=reader.key[:80])


async def _engage(request: web.Request, link: ForwardLink, reader: Reader, kind: str) -> ForwardOutcome:
    return await request.app[GAMIFICATION].on_forward_engaged(
        link,
        reader.key,
        recipient_member_id=reader.member_id,
        kind=kind,
        fingerprint=reader.device,
        network=reader.network,
    )


async def forwarded_page(request: web.Request) -> web.Response:
    """The answer, with the reader's buttons; nothing recorded, nothing paid."""
    found = await _link_and_item(request)
    if found is None:
        return _missing(request)
    link, item = found
    settings: Settings = request.app[SERVICES].settings
    session = page_session(request, settings)
    reader = await reader_of(request, link, settings)
    engagement = await _engagement(link, reader)
    mine = engagement is not None and engagement.link_id == link.id
    rated = mine and engagement is not None and await ForwardRating.filter(engagement_id=engagement.id).exists()
    own = reader.member_id is not None and reader.member_id == link.sharer_id
    sharer = await Member.get_or_none(id=link.sharer_id)
    resp = render(
        request,
        "forward.html",
        item=item,
        token=link.token,
        sharer=sharer.display_name if sharer else "",
        csrf_token=member_csrf_token(request, settings, session),
        can_read=engagement is None and not own,
        read=mine,
        can_rate=(engagement is None or mine) and not rated and not own,
        rated=rated,
        thanks=request.query.get("rated") == "1",
    )
    resp.headers["Cache-Control"] = "no-store"
    set_session_cookie(resp, request, session)
    return resp


async def _checked_post(request: web.Request) -> tuple[ForwardLink, Settings, dict[str, str]] | web.Response:
    """The link of a reader's post from this service's own page with its session's token."""
    found = await _link_and_item(request)
    if found is None:
        return _missing(request)
    link, _item = found
    settings: Settings = request.app[SERVICES].settings
    form = await request.post()
    if not member_csrf_ok(request, settings, form.get("csrf_token")):
        return _refused(request, link.token, "form")
    return link, settings, {k: str(v) for k, v in form.items()}


async def forwarded_read(request: web.Request) -> web.Response:
    """ "This helped me": the reader's engagement, paid to the sharer under the rules."""
    checked = await _checked_post(request)
    if isinstance(checked, web.Response):
        return checked
    link, settings, _form = checked
    reader = await reader_of(request, link, settings)
    if reader.member_id is not None and reader.member_id == link.sharer_id:
        return _refused(request, link.token, "own")
    await _engage(request, link, reader, "read")
    raise web.HTTPSeeOther(f"/f/{link.token}")


async def forwarded_rate(request: web.Request) -> web.Response:
    """准确 / 不准确, once per engagement; a reader who rates without tapping "helped" first
    engages with the same post."""
    checked = await _checked_post(request)
    if isinstance(checked, web.Response):
        return checked
    link, settings, form = checked
    verdict = form.get("accurate", "")
    if verdict not in ("0", "1"):
        raise bad_request(request, N_("Choose accurate or not accurate."))
    reader = await reader_of(request, link, settings)
    if reader.member_id is not None and reader.member_id == link.sharer_id:
        return _refused(request, link.token, "own")
    engagement = await _engagement(link, reader)
    if engagement is None:
        engagement = (await _engage(request, link, reader, "rate")).engagement
    if engagement is None:
        return _refused(request, link.token, "own")
    if engagement.link_id != link.id:
        return _refused(request, link.token, "other")
    await request.app[GAMIFICATION].rate_forward(engagement, verdict == "1", rater_member_id=reader.member_id)
    raise web.HTTPSeeOther(f"/f/{link.token}?rated=1")


def setup(app: web.Application) -> None:
    """Register the forward pages (``gamification.web.setup`` calls this)."""
    app.router.add_get("/f/{token}", forwarded_page)
    app.router.add_post("/f/{token}/read", forwarded_read)
    app.router.add_post("/f/{token}/rate", forwarded_rate)
