"""``python -m bot points release`` and ``python -m bot badges rerun``.

``points release`` pays out pending points whose hold has passed. The service runs the same job
hourly (gamification.web's housekeeping); this command is for cron, for an operator after a
change of ``trust.hold.days``, and for tests. Idempotent: an entry is released once whoever
gets there first.

``rewards reconcile`` lists open top-up orders and settles them against the provider
(gamification.rewards.reconcile): resubmits due retries, completes or refunds from the
provider's status, queues for staff an order still processing after the timeout.

``badges rerun`` reconciles every member's badges with the ``badges:`` rules in rules.yaml
(after the thresholds changed, or to repair): grants what is due, revokes (audited in
``gam_badge_event``) what no longer is. Idempotent: a second run changes nothing."""

from __future__ import annotations

import argparse
import asyncio

from bot.core.settings import Settings


def cmd_points_release(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.storage import with_db
    from gamification.leaderboard import make_leaderboard
    from gamification.rules import load_rules
    from gamification.service import Gamification

    async def run() -> int:
        redis = None
        if settings.redis_url:
            from bot.core.redis_stores import make_redis

            redis = make_redis(settings.redis_url)
        try:
            # this command's own instance: the board to update, nobody to notify
            gamification = Gamification(load_rules(), make_leaderboard(redis, prefix="everycsr:lb"))
            released = await gamification.release_due()
            await gamification.close()
        finally:
            if redis is not None:
                await redis.aclose()
        print(f"released {released} pending points")
        return 0

    return asyncio.run(with_db(settings, run))


def cmd_badges_rerun(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.storage import with_db
    from gamification import badges
    from gamification.rules import load_rules
    from bot.core.clock import utcnow

    async def run() -> int:
        granted, revoked = await badges.rerun(load_rules(), utcnow().date())
        print(f"badges: granted {granted}, revoked {revoked}")
        return 0

    return asyncio.run(with_db(settings, run))


def cmd_rewards_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.storage import with_db
    from gamification import rewards, topup

    async def run() -> int:
        provider = (
            topup.HttpTopupProvider(settings.topup_api_base, settings.topup_secret) if settings.topup_api_base else None
        )
        base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        rows = await rewards.reconcile(provider, f"{base}/api/v1/topup/callback", rewards.policy_from(settings))
        for row in rows:
            print(f"redemption {row.redemption_id}: {row.before} -> {row.after}  {row.detail}")
        settled = sum(1 for r in rows if r.after != r.before)
        print(f"reconciled: {len(rows)} checks, {settled} changed")
        return 0

    return asyncio.run(with_db(settings, run))


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    points = sub.add_parser("points", help="points: release pending points")
    psub = points.add_subparsers(dest="points_command", required=True, metavar="ACTION")
    p = psub.add_parser("release", help="pay out pending points whose hold has passed (idempotent)")
    p.set_defaults(func=cmd_points_release)
    b = sub.add_parser("badges", help="badges: re-run the badge rules")
    bsub = b.add_subparsers(dest="badges_command", required=True, metavar="ACTION")
    r = bsub.add_parser("rerun", help="grant the badges now due and revoke (audited) those no longer due (idempotent)")
    r.set_defaults(func=cmd_badges_rerun)
    rw = sub.add_parser("rewards", help="rewards: settle top-up orders")
    rwsub = rw.add_subparsers(dest="rewards_command", required=True, metavar="ACTION")
    rc = rwsub.add_parser("reconcile", help="list open top-up orders and settle them against the provider (idempotent)")
    rc.set_defaults(func=cmd_rewards_reconcile)
