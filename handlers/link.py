"""Linking a member's channels: 绑定手机 / bind phone (SMS code), 绑定 / bind (a code to type on
another channel), and 改名 / name (the display name others see).

A proven phone number belongs to one member: typing its code links the asking account to the
phone's member (merging the two when both exist, ``bot.core.identity.merge``)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from tortoise.exceptions import IntegrityError

from bot.core.identity import codes
from bot.core.identity.merge import MergeError
from bot.core.identity.names import clean_nickname, display_name
from bot.core.messages import Choice, Outgoing, Reply
from bot.core.models import ChannelAccount, Member
from community.moderation import service as moderation
from gamification.rewards import normalize_phone
from handlers.router import Context, Router

log = logging.getLogger(__name__)
router = Router("link")

PHONE_WORDS = ("phone", "手机", "手機", "手机号", "手機號")


def _looks_like_a_question(text: str) -> bool:
    return len(text.split()) >= 3 or any(ch in text for ch in "?？吗嗎怎么麼")


async def _ask_instead(ctx: Context) -> Reply | list[Reply]:
    """Words that only start like a command ("name on my bill is wrong?", "绑定 其他号码") are a
    question for the knowledge base (the router's fallback)."""
    assert ctx.services.pipeline is not None
    fallback = ctx.services.pipeline.router.find_fallback()
    if fallback is None:
        return []
    ctx.args = ctx.text
    return await fallback(ctx) or []


@router.command("bind", "绑定", "綁定", help="Link your accounts")
async def bind(ctx: Context) -> Reply | list[Reply]:
    if ctx.incoming.meta.get("group"):  # a code shown or typed in a group is everyone's
        return Reply(
            text=ctx._("For your account's safety, linking works only in a private chat with me."), kind="link"
        )
    args = ctx.args.strip()
    head, _sep, rest = args.partition(" ")
    if head.lower() in PHONE_WORDS:
        return await _send_phone_code(ctx, rest)
    for word in PHONE_WORDS:  # "绑定 手机13800138000"
        if head.lower().startswith(word) and len(head) > len(word):
            return await _send_phone_code(ctx, head[len(word) :] + rest)
    if not args:
        return await _show_bind_code(ctx)
    if not _code_shaped(args):
        return await _ask_instead(ctx)
    return await _redeem(ctx, args)


@router.command("bindphone", "绑定手机", "綁定手機", help="Verify your phone number")
async def bind_phone(ctx: Context) -> Reply:
    return await _send_phone_code(ctx, ctx.args)


@router.command("name", "改名", "昵称", "暱稱", help="Choose the name others see")
async def rename(ctx: Context) -> Reply | list[Reply]:
    _ = ctx._
    raw = ctx.args.strip()
    if raw and _looks_like_a_question(raw):
        return await _ask_instead(ctx)
    if not raw:
        return Reply(text=_('Send "name" followed by the name others should see, e.g. "name Lily".'), kind="name")
    name = clean_nickname(raw)
    if name is None or (await moderation.screen(name)).action != "allow":
        return Reply(
            text=_("Please choose a name of 1-16 characters, without links or special characters."), kind="name"
        )
    await Member.filter(id=ctx.member.id).update(nickname=name)
    ctx.member.nickname = name
    return Reply(text=_("Done: others now see you as %(name)s.", name=name), kind="name")


async def _send_phone_code(ctx: Context, raw: str) -> Reply:
    _ = ctx._
    settings = ctx.services.settings
    phone = normalize_phone(raw.strip(), settings.sms_default_region) if raw.strip() else None
    if phone is None:
        return Reply(
            text=_('Please send "bind phone" followed by your mobile number, e.g. "bind phone 13800138000".'),
            kind="link",
        )
    if ctx.member.phone == phone and ctx.member.phone_verified_at is not None:
        return Reply(text=_("This number is already verified for you."), kind="link")
    if ctx.services.channels.get("sms") is None:
        return Reply(text=_("Sorry, we cannot send text messages right now. Please try again later."), kind="link")
    try:
        issued = await codes.issue_phone_code(settings.secret_key, ctx.member.id, ctx.account.id, phone)
    except codes.TooManyCodes:
        return Reply(
            text=_("Too many codes were requested for this number or account. Please try again tomorrow."), kind="link"
        )
    text = _(
        'Your EveryCSR code is %(code)s. Type "bind %(code)s" in the chat where you asked. '
        "It expires in 10 minutes. If you did not ask for it, ignore this message.",
        code=issued.code,
    )
    await ctx.services.outbox.enqueue(
        Outgoing(
            channel="sms",
            address=phone,
            reply=Reply(text=text, kind="otp"),
            member_id=None,
            purpose="reply",
            idempotency_key=f"link-code:{issued.row.id}",
        ),
        transcribe=False,
    )
    return Reply(
        text=_(
            'We sent a 6-digit code to %(phone)s. Type "bind" and the code here or on any of your '
            'channels, e.g. "bind 123456".',
            phone=phone,
        ),
        kind="link",
    )


async def _show_bind_code(ctx: Context) -> Reply:
    _ = ctx._
    try:
        issued = await codes.issue_bind_code(ctx.services.settings.secret_key, ctx.member.id, ctx.account.id)
    except codes.TooManyCodes:
        return Reply(text=_("Too many codes were requested for this account. Please try again tomorrow."), kind="link")
    return Reply(
        text=_(
            "Your link code is %(code)s. On your other channel (WeChat, Telegram, SMS or web chat), send "
            '"bind %(code)s" within 10 minutes to make them one account.',
            code=issued.code,
        ),
        kind="link",
    )


async def _redeem(ctx: Context, raw: str) -> Reply:
    _ = ctx._
    settings = ctx.services.settings
    # failed attempts are paced per member (a guesser gets ~5 an hour)
    if codes.looks_like_phone_code(raw):
        row = await codes.redeem_phone_code(settings.secret_key, ctx.member.id, raw)
        if row is None:
            return Reply(
                text=_('That code is wrong or has expired. Send "bind phone" and your number for a new one.'),
                kind="link",
            )
        return await _phone_proven(ctx, row.phone or "")
    if codes.looks_like_bind_code(raw):
        if await ctx.services.limiter.reserve(f"link:tries:{ctx.member.id}", 5 / 3600, 5) > 0:
            return Reply(text=_("Too many tries. Please wait an hour and try again."), kind="link")
        row = await codes.redeem_bind_code(settings.secret_key, raw)
        if row is None:
            return Reply(
                text=_('That code is wrong or has expired. Send "bind" on your other channel for a new one.'),
                kind="link",
            )
        return await _ask_to_link(ctx, row.member_id, via="bind")
    return Reply(
        text=_('Send "bind" to get a link code, or "bind phone" and your number to verify your phone.'), kind="link"
    )


def _code_shaped(raw: str) -> bool:
    return codes.looks_like_phone_code(raw) or codes.looks_like_bind_code(raw)


async def _phone_proven(ctx: Context, phone: str) -> Reply:
    """The asker proved ``phone``: it becomes theirs, or they join the member who has it."""
    _ = ctx._
    owner = await Member.get_or_none(phone=phone)
    if owner is None:
        sms = await ChannelAccount.get_or_none(channel="sms", external_id=phone)
        owner = await Member.get_or_none(id=sms.member_id) if sms else None
    merger = ctx.services.merger
    if owner is not None:
        owner_id = await merger.resolve(owner.id)
        if owner_id != ctx.member.id:
            return await _ask_to_link(ctx, owner_id, via="phone", phone=phone)
    if not await _set_phone(ctx.member.id, phone):
        return Reply(
            text=_("Sorry, this number could not be verified for you. Please contact customer service."), kind="link"
        )
    return Reply(text=_("Your phone number %(phone)s is verified.", phone=phone), kind="link")


async def _set_phone(member_id: int, phone: str) -> bool:
    """The proven number is the member's, and so is its SMS account: texts from it reach
    this member, and the WeChat 48-hour fallback and the outbox can use it."""
    try:
        await Member.filter(id=member_id).update(phone=phone, phone_verified_at=datetime.now(timezone.utc))
    except IntegrityError:  # another member holds it (a race): an agent sorts it out
        return False
    try:
        await ChannelAccount.get_or_create(channel="sms", external_id=phone, defaults={"member_id": member_id})
    except IntegrityError:  # created concurrently by the number's first text
        pass
    return True


CONFIRM_KEY = "link_confirm"  # conversation state: the link the member is asked to confirm
CONFIRM_SECONDS = 300


async def _ask_to_link(ctx: Context, other_id: int, *, via: str, phone: str = "") -> Reply:
    """Joining two members moves this account's points and history: the person typing the
    code confirms first, so a code someone else talked them into typing takes nothing."""
    _ = ctx._
    other_id = await ctx.services.merger.resolve(other_id)
    if other_id == ctx.member.id:
        return Reply(text=_("These accounts are already linked."), kind="link")
    other = await Member.get(id=other_id)
    ctx.state[CONFIRM_KEY] = {
        "other": other_id,
        "via": via,
        "phone": phone,
        "until": datetime.now(timezone.utc).timestamp() + CONFIRM_SECONDS,
    }
    return Reply(
        text=_(
            "This joins your account with the account of %(name)s: your channels, points and history become "
            "one account. Only confirm if that account is yours.",
            name=display_name(other, _),
        ),
        choices=[Choice(label=_("Yes, it is mine: link"), action="lnk:ok"), Choice(label=_("Cancel"), action="lnk:no")],
        kind="link",
    )


@router.action("lnk")
async def confirm_link(ctx: Context) -> Reply:
    pending = ctx.state.pop(CONFIRM_KEY, None)
    if ctx.args != "ok" or not isinstance(pending, dict):
        return Reply(text=ctx._("Nothing was linked."), kind="link")
    if float(pending.get("until", 0)) < datetime.now(timezone.utc).timestamp():
        return Reply(text=ctx._("That link request has expired. Please start again."), kind="link")
    other_id = int(pending["other"])
    if pending.get("via") == "phone":
        reply = await _link(ctx, other_id, via="phone", target_is_other=True)
        if reply.kind == "link" and await ctx.services.merger.resolve(ctx.member.id) == other_id:
            await _set_phone(other_id, str(pending.get("phone", "")))
        return reply
    return await _link(ctx, other_id, via=str(pending.get("via", "bind")))


async def _link(ctx: Context, other_id: int, *, via: str, target_is_other: bool = False) -> Reply:
    """Make the asker and ``other_id`` one member (the one with the verified phone stays)."""
    _ = ctx._
    merger = ctx.services.merger
    me = ctx.member.id
    other_id = await merger.resolve(other_id)
    if other_id == me:
        return Reply(text=_("These accounts are already linked."), kind="link")
    other = await Member.get(id=other_id)
    if target_is_other or other.phone_verified_at or not ctx.member.phone_verified_at:
        source, target = me, other_id
    else:
        source, target = other_id, me
    try:
        await merger.merge(source, target, via=via, actor=f"member:{me}")
    except MergeError:
        log.info("link refused: member %s and %s", source, target)
        return Reply(
            text=_(
                "These accounts belong to different verified phone numbers and cannot be linked here. "
                "Please contact customer service."
            ),
            kind="link",
        )
    return Reply(text=_("Linked! Your channels now share one account: one history, one points balance."), kind="link")
