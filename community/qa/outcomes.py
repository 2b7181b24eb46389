"""What a member reads for each outcome of answering, accepting and voting: one table for
the chat (``handlers.post``) and the community pages, so both say the same thing."""

from __future__ import annotations

from bot.core.i18n import N_
from community.qa.service import Status

# (gettext msgid, reply kind)
GONE = (N_("Sorry, that answer is no longer available."), "error")
ANSWER_OUTCOMES: dict[Status, tuple[str, str]] = {
    Status.OK: (N_("Thank you! Your answer was sent to the member who asked."), "answered"),
    Status.HELD: (N_("Thank you! Your answer will be shown after a quick review."), "answered"),
    Status.BLOCKED: (
        N_("Sorry, your answer could not be posted because it contains words our community does not allow."),
        "moderation",
    ),
    Status.NOT_ALLOWED: (N_("You cannot answer your own question."), "error"),
    Status.CLOSED: (N_("This question is already settled. Thank you anyway!"), "error"),
}
ACCEPT_OUTCOMES: dict[Status, tuple[str, str]] = {
    Status.OK: (
        N_("Thanks! The answer is accepted and its author rewarded. Glad your question is solved."),
        "accepted",
    ),
    Status.ALREADY: (N_("This question already has an accepted answer."), "accepted"),
    Status.NOT_ALLOWED: (N_("Only the member who asked can accept an answer."), "error"),
}
VOTE_OUTCOMES: dict[Status, tuple[str, str]] = {
    Status.OK: (N_("Thanks for your vote!"), "vote"),
    Status.ALREADY: (N_("You already voted for this answer."), "vote"),
    Status.NOT_ALLOWED: (N_("You cannot vote for your own answer."), "error"),
}


def outcome(status: Status, table: dict[Status, tuple[str, str]]) -> tuple[str, str]:
    """The (msgid, kind) for ``status``; an answer that went away reads as gone."""
    return table.get(status, GONE)
