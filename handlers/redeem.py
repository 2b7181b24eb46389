"""/redeem 兑换: choose a reward, give a phone number for top-ups, points are spent at once."""
from __future__ import annotations

from bot.i18n import N_
from bot.messages import Choice, Reply
from gamification import ledger, service
from gamification.models import Reward
from gamification.rewards import RedeemError, catalogue, normalize_phone
from handlers.router import Context, Router

router = Router("redeem")

ERRORS = {
    "unavailable": N_("Sorry, that reward is no longer available."),
    "out_of_stock": N_("Sorry, that reward is out of stock."),
    "limit": N_("You have already redeemed this reward as often as allowed."),
    "insufficient": N_("You do not have enough points for this reward yet."),
    "phone": N_("Please send a valid mobile number for the top-up."),
}


async def menu(ctx: Context) -> Reply:
    _ = ctx._
    bal = await ledger.balance_of(ctx.member.id)
    rewards = await catalogue()
    if not rewards:
        return Reply(text=_("There are no rewards to redeem right now. Your points: %(balance)s", balance=bal.balance), kind="redeem")
    return Reply(
        text=_("Your points: %(balance)s. Choose a reward:", balance=bal.balance),
        choices=[Choice(label=_("%(name)s — %(cost)s points", name=r.name, cost=r.cost), action=f"rd:{r.id}") for r in rewards[:8]],
        kind="redeem",
    )


async def _redeem(ctx: Context, reward: Reward, phone: str) -> Reply:
    _ = ctx._
    try:
        r = await service.redeem(ctx.member.id, reward.id, request_key=f"rd:{ctx.member.id}:{ctx.transcript_id}", phone=phone)
    except RedeemError as err:
        return Reply(text=_(ERRORS[err.code]), kind="redeem")
    bal = await ledger.balance_of(ctx.member.id)
    if reward.kind == "gift":
        text = _("Redeemed %(name)s for %(cost)s points (order %(order)s). Our team will contact you to deliver it. Points left: %(balance)s",
                 name=reward.name, cost=r.cost, order=r.id, balance=bal.balance)
    else:
        text = _("Redeemed %(name)s for %(cost)s points (order %(order)s); it is on its way to %(phone)s. If it fails, your points come back. Points left: %(balance)s",
                 name=reward.name, cost=r.cost, order=r.id, phone=r.phone, balance=bal.balance)
    return Reply(text=text, kind="redeem")


@router.command("redeem", "兑换", "兌換", help=N_("Redeem points"))
async def redeem_cmd(ctx: Context) -> Reply:
    return await menu(ctx)


@router.action("rd")
async def redeem_choice(ctx: Context) -> Reply:
    if not ctx.args.isdigit():
        return await menu(ctx)
    reward = await Reward.get_or_none(id=int(ctx.args), active=True)
    if reward is None:
        return Reply(text=ctx._(ERRORS["unavailable"]), kind="redeem")
    if reward.kind == "gift":
        return await _redeem(ctx, reward, "")
    if ctx.channel == "sms":  # the number the member writes from
        return await _redeem(ctx, reward, ctx.account.external_id)
    ctx.state["await"] = "redeem_phone"
    ctx.state["redeem_reward"] = reward.id
    return Reply(text=ctx._("Which mobile number should receive %(name)s?", name=reward.name), kind="prompt")


@router.state("redeem_phone")
async def redeem_phone(ctx: Context) -> Reply:
    reward_id = ctx.state.pop("redeem_reward", None)
    ctx.state.pop("await", None)
    reward = await Reward.get_or_none(id=reward_id, active=True) if reward_id else None
    if reward is None:
        return Reply(text=ctx._(ERRORS["unavailable"]), kind="redeem")
    phone = normalize_phone(ctx.args, ctx.services.settings.sms_default_region)
    if phone is None:
        ctx.state["await"] = "redeem_phone"
        ctx.state["redeem_reward"] = reward.id
        return Reply(text=ctx._(ERRORS["phone"]), kind="prompt")
    return await _redeem(ctx, reward, phone)
