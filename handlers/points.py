"""/points 积分: balance, recent entries and the next badge to earn."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Choice, Reply
from gamification.service import EVENT_LABELS
from handlers.router import Context, Router

router = Router("points")


@router.command("points", "积分", "積分", "jf", help=N_("My points"))
@router.action("pts")
async def points(ctx: Context) -> Reply:
    _ = ctx._
    s = await ctx.domains.gamification.summary(ctx.member.id)
    lines = [_("Your points: %(balance)s", balance=s.balance)]
    if s.held:
        lines.append(
            _(
                "%(held)s more points are pending: they become redeemable after a short hold, once we have checked them.",
                held=s.held,
            )
        )
    if s.debt:
        lines.append(_("%(debt)s points taken back will be settled from your next points.", debt=s.debt))
    if s.recent:
        lines.append(_("Recent:"))
        for e in s.recent:
            label = _(EVENT_LABELS.get(e.event, e.event))
            shown = f"{e.granted:+d}" if e.granted or not e.held else _("%(held)s on hold", held=e.held)
            note = (
                ""
                if e.granted == e.delta or e.event in ("reversal", "spend", "expiry") or e.held
                else _(" (limit reached)")
            )
            lines.append(f"· {e.created_at:%m-%d} {label} {shown}{note}")
    else:
        lines.append(_("Earn points by answering other members' questions and forwarding answers to friends."))
    if s.next_badge:
        badge, have = s.next_badge
        lines.append(
            _(
                "Next badge: %(badge)s (%(have)s/%(need)s)",
                badge=_(badge.name),
                have=min(have, badge.threshold),
                need=badge.threshold,
            )
        )
    return Reply(
        text="\n".join(lines),
        choices=[
            Choice(label=_("Leaderboard"), action="top:week"),
            Choice(label=_("My badges"), action="bdg:"),
            Choice(label=_("Redeem points"), action="rd:"),
        ],
        kind="points",
    )
