"""/top 排行: the top 10 and the member's own rank, weekly, monthly or all-time."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Choice, Reply
from gamification.leaderboard import PERIODS, Row
from gamification.service import names_and_titles
from handlers.router import Context, Router

router = Router("leaderboard")

PERIOD_NAMES = {"week": N_("This week"), "month": N_("This month"), "all": N_("All time")}


async def board_reply(ctx: Context, period: str) -> Reply:
    _ = ctx._
    st = await ctx.domains.gamification.standing(period, ctx.member.id)
    ids = [r.member_id for r in st.top] + ([st.me.member_id] if st.me else [])
    names = await names_and_titles(ids, _)

    def line(r: Row) -> str:
        name, title = names.get(r.member_id, ("", ""))
        you = _(" (you)") if r.member_id == ctx.member.id else ""
        tag = f" [{_(title)}]" if title else ""
        return _(
            "%(rank)s. %(name)s%(title)s — %(points)s points%(you)s",
            rank=r.rank,
            name=name,
            title=tag,
            points=r.points,
            you=you,
        )

    lines = [_("Leaderboard · %(period)s", period=_(PERIOD_NAMES[period]))]
    lines += [line(r) for r in st.top] or [_("No points earned yet in this period. Be the first!")]
    if st.me and all(r.member_id != ctx.member.id for r in st.top):
        lines.append(_("Your rank: %(rank)s with %(points)s points", rank=st.me.rank, points=st.me.points))
    elif st.me is None:
        lines.append(_("You are not on this board yet."))
    others = [p for p in PERIODS if p != period]
    return Reply(
        text="\n".join(lines),
        choices=[Choice(label=_(PERIOD_NAMES[p]), action=f"top:{p}") for p in others],
        kind="leaderboard",
    )


@router.command("top", "排行", "排行榜", "leaderboard", help=N_("Leaderboard"))
async def top(ctx: Context) -> Reply:
    period = ctx.args.strip().lower() if ctx.args.strip().lower() in PERIODS else "week"
    return await board_reply(ctx, period)


@router.action("top")
async def top_action(ctx: Context) -> Reply:
    return await board_reply(ctx, ctx.args if ctx.args in PERIODS else "week")
