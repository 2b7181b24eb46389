"""/redeem 兑换: choose a reward; points are spent at once.

Redeeming needs a verified phone, and phone credit or data goes to that number only: the
member is never asked for one. The balance is checked before anything is asked, and only
redeemable points count (pending points are shown, not spent)."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.identity.names import mask_phone
from bot.core.messages import Choice, Reply
from gamification import ledger
from gamification.models import Reward
from gamification.rewards import RedeemError, catalogue, verified_phone
from handlers.router import Context, Router

router = Router("redeem")

ERRORS = {
    "unavailable": N_("Sorry, that reward is no longer available."),
    "out_of_stock": N_("Sorry, that reward is out of stock."),
    "limit": N_("You have already redeemed this reward as often as allowed."),
    "insufficient": N_("You do not have enough points for this reward yet."),
    "unverified": N_(
        "Redeeming points needs a verified mobile number: send “bind phone” (绑定手机) to verify yours, then try again. Phone credit only ever goes to that number."
    ),
}


async def menu(ctx: Context) -> Reply:
    _ = ctx._
    bal = await ledger.balance_of(ctx.member.id)
    pending = _(" (%(pending)s more pending)", pending=bal.held) if bal.held else ""
    rewards = await catalogue()
    if not rewards:
        return Reply(
            text=_("There are no rewards to redeem right now. Your points: %(balance)s", balance=bal.balance) + pending,
            kind="redeem",
        )
    lines = [_("Your points: %(balance)s. Choose a reward:", balance=bal.balance) + pending]
    if await verified_phone(ctx.member.id) is None:
        lines.append(_(ERRORS["unverified"]))
    return Reply(
        text="\n".join(lines),
        choices=[
            Choice(label=_("%(name)s — %(cost)s points", name=r.name, cost=r.cost), action=f"rd:{r.id}")
            for r in rewards[:8]
        ],
        kind="redeem",
    )


async def _redeem(ctx: Context, reward: Reward) -> Reply:
    _ = ctx._
    try:
        r = await ctx.domains.gamification.redeem(
            ctx.member.id, reward.id, request_key=f"rd:{ctx.member.id}:{ctx.transcript_id}"
        )
    except RedeemError as err:
        return Reply(text=_(ERRORS[err.code]), kind="redeem")
    bal = await ledger.balance_of(ctx.member.id)
    if reward.kind == "gift":
        text = _(
            "Redeemed %(name)s for %(cost)s points (order %(order)s). Our team will contact you to deliver it. Points left: %(balance)s",
            name=reward.name,
            cost=r.cost,
            order=r.id,
            balance=bal.balance,
        )
    else:
        text = _(
            "Redeemed %(name)s for %(cost)s points (order %(order)s); it is on its way to %(phone)s. If it fails, your points come back. Points left: %(balance)s",
            name=reward.name,
            cost=r.cost,
            order=r.id,
            phone=mask_phone(r.phone),
            balance=bal.balance,
        )
    return Reply(text=text, kind="redeem")


async def _choose(ctx: Context, reward_id: int) -> Reply:
    reward = await Reward.get_or_none(id=reward_id, active=True)
    if reward is None:
        return Reply(text=ctx._(ERRORS["unavailable"]), kind="redeem")
    if (await ledger.balance_of(ctx.member.id)).balance < reward.cost:
        return Reply(text=ctx._(ERRORS["insufficient"]), kind="redeem")
    if await verified_phone(ctx.member.id) is None:
        return Reply(text=ctx._(ERRORS["unverified"]), kind="redeem")
    return await _redeem(ctx, reward)


@router.command("redeem", "兑换", "兌換", help=N_("Redeem points"))
async def redeem_cmd(ctx: Context) -> Reply:
    return await menu(ctx)


@router.action("rd")
async def redeem_choice(ctx: Context) -> Reply:
    if not ctx.args.isdigit():
        return await menu(ctx)
    return await _choose(ctx, int(ctx.args))


@router.state("redeem_phone")
async def redeem_phone(ctx: Context) -> Reply:
    """A conversation left waiting for a typed number before the upgrade: the number typed is
    ignored (credit goes to the verified phone only); the choice goes on from there."""
    reward_id = ctx.state.redeem_reward
    ctx.state.redeem_reward = ctx.state.await_ = None
    if reward_id is None:
        return await menu(ctx)
    return await _choose(ctx, reward_id)
