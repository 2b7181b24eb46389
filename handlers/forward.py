"""Forwarding knowledge to friends ("转发给朋友") and the recipient's side of it.

- action ``fw:<item_id>`` (every answer's button): a share link for the member's channel —
  a Telegram deep link ``t.me/<bot>?start=fw_<token>``, a web link ``/f/<token>`` for WeChat
  and web chat, and on SMS the ``ZF <code> <phone>`` instruction.
- ``ZF <code> <phone>`` sends the item to that number through the outbox (purpose
  ``forward``), sender named and with an opt-out line; refused if the number opted out.
  A number receives at most ``zf.per_destination_daily`` forwards a day from anyone (a friend
  who engaged with this sender's forwards before may get one more per item), a member sends
  at most ``zf.per_sender_daily`` a day, and the first message to a number says who we are,
  who sent it and how to stop.
- payload ``fw_<token>`` (Telegram ``/start``, WeChat scan): the recipient engages — the
  sharer earns points if this is a new distinct person — and sees the item with
  准确/不准确 buttons (action ``fwr:<token>:1|0``).
- on SMS, a forwarded-to number that writes to us has engaged (middleware).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from bot.core.i18n import N_
from bot.core.identity.names import mask_phone
from bot.core.state import remember_choices_of
from bot.core.messages import Card, Choice, Outgoing, Reply
from bot.core.models import ChannelAccount, Member
from bot.core.accounts import get_or_create_account, state_key
from community.models import KnowledgeItem
from tortoise.exceptions import IntegrityError

from bot.core.models import OutboxMessage
from gamification.forwarding import share_link
from gamification.models import ForwardEngagement, ForwardLink, SmsForward
from gamification.rewards import normalize_phone
from gamification.service import ForwardOutcome
from handlers.router import Context, Router

router = Router("forward")

SMS_LINK_DAYS = 30
SMS_FORWARDS_PER_HOUR = 10  # ZF to distinct numbers: no SMS spam through us


def public_base(ctx: Context) -> str:
    s = ctx.services.settings
    return (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")


def share_url(ctx: Context, link: ForwardLink) -> str:
    username = ctx.services.settings.telegram_bot_username.lstrip("@")
    if link.channel == "telegram" and username:
        return f"https://t.me/{username}?start=fw_{link.token}"
    return f"{public_base(ctx)}/f/{link.token}"


def _device(ctx: Context) -> str:
    return str(ctx.incoming.meta.get("fingerprint") or "")


async def _item(raw: str) -> KnowledgeItem | None:
    raw = raw.strip()
    if raw.isdigit():
        item = await KnowledgeItem.get_or_none(id=int(raw), status="published")
        if item:
            return item
    if raw and len(raw) <= 16:
        return await KnowledgeItem.filter(sms_code__iexact=raw, status="published").first()
    return None


@router.action("fw")
async def forward_button(ctx: Context) -> Reply:
    _ = ctx._
    item = await _item(ctx.args) if ctx.args.isdigit() else None
    if item is None:
        return Reply(text=_("Sorry, that answer can no longer be forwarded."), kind="error")
    link = await share_link(ctx.member.id, item.id, ctx.channel, fingerprint=_device(ctx))
    url = share_url(ctx, link)
    lines = [
        _("Forward this answer to friends with this link:"),
        url,
        _("You earn points each time someone new opens it; more for harder questions."),
    ]
    if ctx.channel == "sms":
        code = item.sms_code or str(item.id)
        lines = [
            _("To send this answer to a friend by SMS, reply: ZF %(code)s <their mobile number>", code=code),
            _("Or share this link:"),
            url,
        ]
    return Reply(
        text="\n".join(lines),
        cards=[Card(title=item.title, description=_("Forward to a friend"), url=url)],
        kind="forward",
        item_id=item.id,
    )


def _sender_name(ctx: Context) -> str:
    if ctx.channel == "sms":
        return mask_phone(ctx.account.external_id)
    return ctx.member.display_name or ctx._("A friend")


ZF_ARGS = re.compile(r"^\s*(\S+)\s+(\+?[\d\s-]{5,20})\s*$")


@router.command("zf", "转发", "轉發", help=N_("Forward an answer by SMS: %(word)s CODE MOBILE"))
async def forward_sms(ctx: Context) -> Reply:
    _ = ctx._
    m = ZF_ARGS.match(ctx.args)
    if not m:
        return Reply(
            text=_("To forward an answer by SMS, send: ZF <code> <mobile number>, for example ZF CXLL 13800138000"),
            kind="forward",
        )
    item = await _item(m.group(1))
    phone = normalize_phone(m.group(2), ctx.services.settings.sms_default_region)
    if item is None:
        return Reply(text=_("Sorry, there is no answer with the code %(code)s.", code=m.group(1)[:16]), kind="forward")
    if phone is None:
        return Reply(
            text=_("Sorry, %(phone)s is not a valid mobile number.", phone=m.group(2).strip()[:20]), kind="forward"
        )
    existing = await ChannelAccount.get_or_none(channel="sms", external_id=phone).select_related("member")
    if existing and existing.member.opted_out:
        return Reply(
            text=_("Sorry, that number has opted out of messages from us, so we cannot forward to it."), kind="forward"
        )
    if existing and existing.member_id == ctx.member.id:
        return Reply(text=_("That is your own number. Forward it to a friend instead!"), kind="forward")
    recent = await ForwardLink.filter(
        sharer_id=ctx.member.id, channel="sms", created_at__gte=datetime.now(timezone.utc) - timedelta(hours=1)
    ).count()
    if recent >= SMS_FORWARDS_PER_HOUR:
        return Reply(
            text=_("You have forwarded many answers by SMS in the last hour. Please try again later."), kind="forward"
        )
    rules = ctx.domains.gamification.rules
    day = datetime.now(timezone.utc).date().isoformat()
    # the same forward again today (a retry after a crash, a second press): its slot, its key
    sent = await SmsForward.get_or_none(sender_id=ctx.member.id, phone=phone, item_id=item.id, day=day)
    if sent is None and await SmsForward.filter(sender_id=ctx.member.id, day=day).count() >= rules.zf_per_sender_daily:
        return Reply(
            text=_("You have forwarded as many answers by SMS as allowed today. Please try again tomorrow."),
            kind="forward",
        )
    friend = (
        existing is not None
        and await ForwardEngagement.filter(
            link__sharer_id=ctx.member.id, recipient_member_id=existing.member_id
        ).exists()
    )
    sent = sent or await _take_sms_slot(ctx.member.id, phone, item.id, day, rules.zf_per_destination_daily, friend)
    if sent is None:
        return Reply(
            text=_("That number has already received a forwarded answer today. Please try again tomorrow."),
            kind="forward",
        )
    account = existing or await get_or_create_account("sms", phone)
    recipient: Member = account.member
    link = await share_link(ctx.member.id, item.id, "sms", target=phone)
    tr = ctx.services.translator
    loc = recipient.locale
    first = (
        not await OutboxMessage.filter(channel="sms", address=phone).exclude(idempotency_key=f"zf:{sent.id}").exists()
    )
    intro = (
        tr.gettext(
            loc,
            N_(
                "This is the first message to this number from EveryCSR customer service. %(sender)s asked us to forward you this answer; we do not send forwards to a number more than once a day:"
            ),
            sender=_sender_name(ctx),
        )
        if first
        else tr.gettext(
            loc, N_("%(sender)s forwarded you this answer from EveryCSR customer service:"), sender=_sender_name(ctx)
        )
    )
    body = "\n\n".join(
        [
            intro,
            f"{item.title}\n{item.answer.strip()}",
            tr.gettext(loc, N_("Was it accurate? Reply 1 for accurate, 2 for not accurate.")),
            tr.gettext(loc, N_("Reply TD to stop messages from us.")),
        ]
    )
    rating = [f"fwr:{link.token}:1", f"fwr:{link.token}:0"]
    await ctx.services.outbox.enqueue(
        Outgoing(
            channel="sms",
            address=phone,
            member_id=recipient.id,
            purpose="forward",
            reply=Reply(text=body, kind="forward", item_id=item.id),
            idempotency_key=f"zf:{sent.id}",
        )
    )
    # the recipient's "1" / "2" maps to the rating, as with any numbered choice
    key = state_key(recipient.id)
    await remember_choices_of(ctx.services.state, key, rating, ctx.services.settings.state_ttl_seconds)
    return Reply(
        text=_(
            "Sent “%(title)s” to %(phone)s. You earn points when they reply or rate it.",
            title=item.title,
            phone=mask_phone(phone),
        ),
        kind="forward",
        item_id=item.id,
    )


async def _take_sms_slot(
    sender_id: int, phone: str, item_id: int, day: str, per_day: int, friend: bool
) -> SmsForward | None:
    """Claim one of the number's forwards for today (a unique row: concurrent senders cannot
    both get it); a friend who engaged with this sender may get one more per item."""
    slots = [f"any:{n}" if n else "any" for n in range(per_day)]
    if friend:
        slots.append(f"friend:{sender_id}:{item_id}")
    for slot in slots:
        try:
            return await SmsForward.create(sender_id=sender_id, phone=phone, item_id=item_id, day=day, slot=slot)
        except IntegrityError:
            continue
    return None


async def _engage(ctx: Context, link: ForwardLink, kind: str) -> ForwardOutcome:
    return await ctx.domains.gamification.on_forward_engaged(
        link, f"m:{ctx.member.id}", recipient_member_id=ctx.member.id, kind=kind
    )


def rating_choices(ctx: Context, token: str) -> list[Choice]:
    return [
        Choice(label=ctx._("✅ Accurate"), action=f"fwr:{token}:1"),
        Choice(label=ctx._("❌ Not accurate"), action=f"fwr:{token}:0"),
    ]


@router.payload("fw")
async def opened(ctx: Context) -> Reply:
    _ = ctx._
    link = await ForwardLink.get_or_none(token=ctx.args[:32]) if ctx.args else None
    item = await KnowledgeItem.get_or_none(id=link.item_id, status="published") if link else None
    if link is None or item is None:
        return Reply(
            text=_("Sorry, this shared answer is no longer available. Type your question and I will help."),
            kind="error",
        )
    await _engage(ctx, link, "start")
    sharer = await Member.get_or_none(id=link.sharer_id)
    intro = _(
        "%(name)s shared this answer with you:",
        name=(sharer.display_name if sharer and sharer.display_name else _("A friend")),
    )
    question = _("Was it accurate?")
    return Reply(
        text=f"{intro}\n\n{item.title}\n\n{item.answer.strip()}\n\n{question}",
        choices=rating_choices(ctx, link.token),
        kind="answer",
        item_id=item.id,
    )


@router.action("fwr")
async def rate(ctx: Context) -> Reply:
    _ = ctx._
    token, _sep, verdict = ctx.args.rpartition(":")
    link = await ForwardLink.get_or_none(token=token[:32]) if token and verdict in ("0", "1") else None
    if link is None:
        return Reply(text=_("Sorry, I did not understand that button."), kind="error")
    if link.sharer_id == ctx.member.id:
        return Reply(text=_("You cannot rate your own forward."), kind="feedback")
    outcome = await _engage(ctx, link, "rating")
    engagement = outcome.engagement or await ForwardEngagement.get_or_none(
        item_id=link.item_id, recipient_key=f"m:{ctx.member.id}"
    )
    if engagement is None or engagement.link_id != link.id:
        return Reply(text=_("Thanks! Someone else shared this answer with you first."), kind="feedback")
    if not await ctx.domains.gamification.rate_forward(engagement, verdict == "1", rater_member_id=ctx.member.id):
        return Reply(text=_("Thanks, we already have your rating."), kind="feedback")
    return Reply(text=_("Thanks for rating this answer!"), kind="feedback")


@router.middleware
async def sms_recipient_engages(ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]) -> list[Reply]:
    """A forwarded-to number that writes to us has engaged with what it was sent."""
    if ctx.channel == "sms" and not ctx.incoming.event:
        since = datetime.now(timezone.utc) - timedelta(days=SMS_LINK_DAYS)
        for link in await ForwardLink.filter(channel="sms", target=ctx.account.external_id, created_at__gte=since):
            await _engage(ctx, link, "sms")
    return await call_next()
