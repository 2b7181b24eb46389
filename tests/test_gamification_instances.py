"""Gamification is a service object, not a process-wide runtime: two instances in one process,
with different rules and boards, each award by their own rules onto their own board."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from typing import Any

from bot.core.models import Member
from gamification import ledger
from gamification.leaderboard import Row, Standing
from gamification.rules import Rules, load_rules, parse_rules
from tests.gamification_helpers import standalone
from tests.trust_helpers import trusted_member


class RecordingBoard:
    """A leaderboard that keeps what it was told, so each instance's board can be read back."""

    def __init__(self) -> None:
        self.points: dict[int, int] = {}

    async def record(self, member_id: int, points: int, at: datetime) -> None:
        self.points[member_id] = self.points.get(member_id, 0) + points

    async def remove(self, member_id: int) -> None:
        self.points.pop(member_id, None)

    async def standing(
        self,
        period: str,
        member_id: int | None = None,
        *,
        limit: int = 10,
        around: int = 2,
        now: datetime | None = None,
    ) -> Standing:
        ranked = sorted(self.points.items(), key=lambda kv: -kv[1])
        rows = [Row(rank, m, p) for rank, (m, p) in enumerate(ranked, 1)]
        return Standing(period, rows[:limit], next((r for r in rows if r.member_id == member_id), None))


def rules_with(**events: Any) -> Rules:
    """rules.yaml with some events changed (None: the event is not in the rules at all)."""
    raw = copy.deepcopy(load_rules().raw)
    for name, spec in events.items():
        if spec is None:
            raw["events"].pop(name)
        else:
            raw["events"][name] = {**raw["events"][name], **spec}
    return parse_rules(raw)


async def test_two_instances_do_not_see_each_others_rules_or_board(sqlite_orm: None) -> None:
    generous = standalone(rules_with(contribution_approved={"points": 50}), board=RecordingBoard())
    stingy = standalone(rules_with(contribution_approved={"points": 5}, answer_helpful=None), board=RecordingBoard())
    assert generous.rules is not stingy.rules and generous.board is not stingy.board
    a, b = await Member.create(), await Member.create()

    # interleaved on one event loop: each pays by its own rules
    paid_a, paid_b = await asyncio.gather(
        generous.on_contribution_approved(1, a.id), stingy.on_contribution_approved(2, b.id)
    )
    assert paid_a is not None and paid_a.granted == 50
    assert paid_b is not None and paid_b.granted == 5
    # an event only one instance's rules have pays there and nowhere else
    voter = await trusted_member()  # a vote that weighs: a trusted member's
    assert await stingy.on_answer_helpful(answer_id=7, answerer_id=b.id, voter_id=voter.id) is None
    assert await generous.on_answer_helpful(answer_id=7, answerer_id=a.id, voter_id=voter.id) is not None
    # each board heard only its own awards
    assert set(generous.board.points) == {a.id} and stingy.board.points == {b.id: 5}  # type: ignore[attr-defined]
    top_generous = await generous.standing("week", a.id)
    top_stingy = await stingy.standing("week", b.id)
    assert [r.member_id for r in top_generous.top] == [a.id] and top_generous.me is not None
    assert [(r.member_id, r.points) for r in top_stingy.top] == [(b.id, 5)]
    assert (await ledger.balance_of(b.id)).balance == 5  # the one ledger holds both, each as decided
    # and a third, default instance still pays rules.yaml's points
    plain = standalone(board=RecordingBoard())
    paid = await plain.on_contribution_approved(3, (await Member.create()).id)
    assert paid is not None and paid.granted == load_rules().events["contribution_approved"].points
