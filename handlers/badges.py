"""徽章 / badges: the badges a member holds, with the day each was earned, and the next one."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Choice, Reply
from gamification import badges
from gamification.models import MemberBadge
from handlers.router import Context, Router

router = Router("badges")


@router.command("badges", "徽章", "勋章", "勳章", help=N_("My badges"))
@router.action("bdg")
async def my_badges(ctx: Context) -> Reply:
    _ = ctx._
    held = await MemberBadge.filter(member_id=ctx.member.id).order_by("created_at", "id")
    lines = []
    if held:
        lines.append(_("Your badges:"))
        for row in held:
            badge = badges.BY_CODE.get(row.code)
            if badge is not None:
                lines.append(f"· {_(badge.name)} ({row.created_at:%Y-%m-%d})")
    else:
        lines.append(
            _("You have no badges yet. Answer other members' questions and forward answers to friends to earn them.")
        )
    s = await ctx.domains.gamification.summary(ctx.member.id)
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
        choices=[Choice(label=_("My points"), action="pts:"), Choice(label=_("Leaderboard"), action="top:week")],
        kind="points",
    )
