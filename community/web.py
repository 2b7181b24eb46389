"""Community pages and background work: agent inbox, community questions, moderation.

``setup`` wires the routes, the templates, the staff links, the review callbacks and the
periodic question-deadline check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.settings import Settings
from bot.staff.web import STAFF_LINKS
from bot.web import add_template_dir
from community.inbox import merge_web
from community.inbox import web as inbox_web
from community.inbox.sla import run_sla_loop
from community.members import web as members_web
from community.moderation import service as moderation
from community.moderation import web as moderation_web
from community.profile import web as profile_web
from community.qa import service as qa
from community.qa import member_web as qa_member_web
from community.qa import web as qa_web
from community.qa.deadlines import run_deadline_loop

log = logging.getLogger(__name__)

LINKS = [
    ("/inbox", N_("Agent inbox"), ("agent",)),
    ("/inbox/members/merge", N_("Merge members"), ("agent",)),
    ("/admin/moderation", N_("Moderation"), ("reviewer",)),
    ("/questions", N_("Community questions"), ()),
]


async def _lift_freezes_hourly() -> None:
    """Forwarding freezes past their clean period are lifted on the next check anyway; the
    sweep makes the audit log and the standing say so without waiting for one."""
    while True:
        try:
            await moderation.lift_clean_freezes()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lifting moderation freezes failed")
        await asyncio.sleep(3600)


def setup(app: web.Application, settings: Settings) -> None:
    for module in (inbox_web, merge_web, qa_web, moderation_web, profile_web):
        add_template_dir(module.TEMPLATES)
        module.add_routes(app)
    members_web.add_routes(app)
    qa_member_web.add_routes(app)
    for entry in LINKS:
        if entry not in STAFF_LINKS:
            STAFF_LINKS.append(entry)

    async def background(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        moderation.invalidate()  # the watch list is read from this app's database
        for kind in ("question", "answer"):
            moderation.on_review(kind, lambda cid, ok, kind=kind: qa.on_review(services, kind, cid, ok))
        task = None
        if settings.qa_deadline_check_seconds > 0:
            task = asyncio.create_task(
                run_deadline_loop(services, settings.qa_deadline_check_seconds), name="qa-deadlines"
            )
        tasks = [task] if task else []
        tasks.append(asyncio.create_task(_lift_freezes_hourly(), name="moderation-freezes"))
        if settings.inbox_sla_check_seconds > 0:
            tasks.append(
                asyncio.create_task(run_sla_loop(services, settings.inbox_sla_check_seconds), name="inbox-sla")
            )
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(background)
