"""Share links: the rows a forward is paid through.

A share link is what points for forwarding hang on (``Gamification.on_forward_engaged``), so it
is made here, by the domain, not by the conversation that offers the button: one link per
sharer, item, channel and SMS number, with the device it was made from.
"""

from __future__ import annotations

import secrets

from gamification.models import ForwardLink

__all__ = ["share_link"]


async def share_link(
    member_id: int, item_id: int, channel: str, *, target: str = "", fingerprint: str = ""
) -> ForwardLink:
    """The member's link for sharing ``item_id`` on ``channel`` (``target``: the SMS number).

    Pressing "forward" again reuses the link, so a sharer's points never depend on how often
    they pressed. The device it was made from (web chat) is written down, once: the sharer's
    own opens from that device never pay (``service.is_sharers_device``)."""
    existing = await ForwardLink.filter(sharer_id=member_id, item_id=item_id, channel=channel, target=target).first()
    if existing:
        if fingerprint and not existing.creator_fingerprint:
            await ForwardLink.filter(id=existing.id, creator_fingerprint="").update(
                creator_fingerprint=fingerprint[:64]
            )
        return existing
    return await ForwardLink.create(
        token=secrets.token_urlsafe(12),
        sharer_id=member_id,
        item_id=item_id,
        channel=channel,
        target=target,
        creator_fingerprint=fingerprint[:64],
    )
