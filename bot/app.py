"""The aiohttp application factory: one app serves every channel, the pages and the API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, NamedTuple

import aiohttp
from aiohttp import web

from bot.core import metrics, storage
from bot.core.app_keys import OUTBOX_WORKER, SERVICES
from bot.core.channel_registry import ChannelRegistry
from bot.core.i18n import get_translator
from bot.core.nonces import make_nonce_store
from bot.core.identity import merge
from bot.core.outbox import Outbox, OutboxWorker
from bot.pipeline import Pipeline
from bot.core.services import Services
from bot.subscriptions import ReviewQueueDecisions, build_gamification, subscribe_all
from bot.core.settings import Settings, get_settings
from bot.core.stores import MemoryDedupStore, MemoryRateLimiter, MemoryStateStore
from bot.web import STATIC_DIR
from bot.web.client import forwarded_middleware, parse_networks
from bot.web.headers import headers_middleware
from community.inbox.service import LIVE_TICKET
from community.knowledge import KnowledgeService
from community.offers.catalog import OFFER_CATALOG, OfferCatalog
from community.search import MatcherConfig
from gamification.merge import LedgerMergeHook
from gamification.service import GAMIFICATION, Gamification
from community.search.remote import RemoteEncoder
from community.search.semantic import resolve_semantic
from handlers import Domains, build_router

from bot import ops_web
from bot.channels import telegram, webchat, wechat
from bot.dashboard import web as dashboard_web
from bot.staff import web as staff_web
from community import web as community_web
from community.knowledge_admin import web as knowledge_admin_web
from community.offers import web as offers_web
from community.review import web as review_web
from gamification import me as gamification_me
from gamification import web as gamification_web
from sms_gateway import channel as sms

# what each part mounts: setup(app, settings) adds its routes and cleanup contexts, in this order
CHANNELS = (webchat, telegram, wechat, sms)
FEATURES = (
    ops_web,  # /healthz details, fan-out for server-sent events
    staff_web,  # staff login, home, audit
    offers_web,
    dashboard_web,
    community_web,  # agent inbox, community questions, moderation
    knowledge_admin_web,  # /admin/knowledge: review, versions, contributions, learned variants
    review_web,  # /staff/review: one queue for the five kinds staff approve or reject
    gamification_web,  # leaderboard page, /f/<token> forwards, rewards admin, top-up callback
    gamification_me,  # GET /api/v1/me: the web chat session's member, points and badges
)

log = logging.getLogger(__name__)

DbSetup = Literal["none", "migrate", "schema"]


def matcher_config(settings: Settings) -> MatcherConfig:
    if settings.embeddings_url:  # the operator's embeddings server instead of the packaged encoder
        semantic, encoder = (
            None,
            RemoteEncoder(
                settings.embeddings_url,
                model=settings.embeddings_model,
                key=settings.embeddings_key,
                timeout=settings.embeddings_timeout_seconds,
            ),
        )
    else:
        semantic, encoder = resolve_semantic(settings.search_semantic), None
    # the knowledge service embeds in a worker thread; the lexical index answers meanwhile
    cfg = MatcherConfig(
        jieba_tmp_dir=settings.jieba_cache_dir, semantic=semantic, encoder=encoder, semantic_background=True
    )
    if settings.search_answer_threshold is not None:  # pinned: both stages of the cascade, no calibration
        cfg.answer_threshold = cfg.lexical_answer_threshold = settings.search_answer_threshold
    if settings.search_suggest_threshold is not None:
        cfg.suggest_threshold = cfg.lexical_suggest_threshold = settings.search_suggest_threshold
    return cfg


def knowledge_service(settings: Settings) -> KnowledgeService:
    """The knowledge base as configured: matcher, encoder (packaged or an embeddings server),
    self-calibration unless a threshold is pinned."""
    return KnowledgeService(
        matcher_config(settings),
        calibrate=settings.search_self_calibrate and settings.search_answer_threshold is None,
    )


class Built(NamedTuple):
    """What one process runs on: the kernel's ``Services`` and the domain services the
    assembly builds once per app (each kept under its package's app key)."""

    services: Services
    gamification: Gamification
    offers: OfferCatalog


async def build_services(settings: Settings) -> Built:
    if settings.redis_url:
        from bot.core.redis_stores import connect_redis_stores

        redis, dedup, state, limiter = await connect_redis_stores(settings)
    else:
        redis, dedup, state, limiter = (
            None,
            MemoryDedupStore(max_entries=settings.memory_dedup_max_entries),
            MemoryStateStore(max_entries=settings.memory_state_max_entries),
            MemoryRateLimiter(),
        )
    services = Services(
        settings=settings,
        translator=get_translator(),
        dedup=dedup,
        state=state,
        limiter=limiter,
        channels=ChannelRegistry(),
        kb=knowledge_service(settings),
        outbox=Outbox(settings),
        redis=redis,
        nonces=make_nonce_store(redis),
    )
    gamification = build_gamification(services)  # bot/subscriptions.py
    services.merger = merge.Merger([LedgerMergeHook(gamification)])
    offers = OfferCatalog(settings.offers_cache_seconds)
    services.pipeline = Pipeline(
        services,
        build_router(),
        Domains(gamification=gamification, offers=offers),
        read_with_sender=(LIVE_TICKET,),  # agent mode and offers look at it on every message
    )
    subscribe_all(services, gamification)  # every cross-domain event subscriber: bot/subscriptions.py
    return Built(services, gamification, offers)


def _services_ctx(settings: Settings, db_setup: DbSetup) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if db_setup == "migrate":
            await storage.migrate(settings.database_url)
        await storage.open_db(settings.database_url, create_schema=db_setup == "schema")
        services, gamification, offers = await build_services(settings)
        app[SERVICES] = services
        app[GAMIFICATION] = gamification
        app[OFFER_CATALOG] = offers
        # /admin/rewards decides flags and manual orders through the review queue (gamification
        # imports no community module: docs/architecture.md)
        app[gamification_web.STAFF_DECISIONS] = ReviewQueueDecisions(gamification)
        services.http = aiohttp.ClientSession()  # one outbound pool per process (keep-alive)
        await services.kb.load()
        try:
            yield
        finally:
            await services.nonces.close()
            await services.http.close()
            if services.redis is not None:  # the pool the stores, fan-out and nonces share
                await services.redis.aclose()
            await services.kb.close()
            await services.writes.close()
            await storage.close_db()

    return ctx


def _outbox_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        worker = OutboxWorker(settings, services.outbox, services.channels, services.limiter, state=services.state)
        app[OUTBOX_WORKER] = worker
        task = asyncio.create_task(worker.run()) if settings.outbox_enabled else None
        yield
        if task:
            await worker.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return ctx


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Clear errors, never a traceback; JSON errors on the API."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/api/") and exc.status >= 400:
            return web.json_response({"error": exc.reason}, status=exc.status)
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return web.json_response({"error": "internal error"}, status=500)
        return web.Response(status=500, text="Internal error. It has been logged.")
    return response


async def healthz(request: web.Request) -> web.Response:
    from tortoise import connections

    try:
        await connections.get("default").execute_query("SELECT 1")
        db = "ok"
    except Exception as exc:  # report, don't crash
        db = f"error: {type(exc).__name__}"
    services = request.app[SERVICES]
    status = 200 if db == "ok" else 503
    return web.json_response(
        {
            "status": "ok" if status == 200 else "degraded",
            "database": db,
            "knowledge_items": len(services.kb.matcher),
            "channels": services.channels.names(),
        },
        status=status,
    )


async def metrics_view(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


def create_app(settings: Settings | None = None, *, db_setup: DbSetup = "none") -> web.Application:
    settings = settings or get_settings()
    parse_networks(settings.trusted_proxies)  # a typo in BOT_TRUSTED_PROXIES stops the start, clearly
    # outermost first: the real client (trusted proxies), security headers, then clean errors
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[forwarded_middleware, headers_middleware, error_middleware],
    )
    app.cleanup_ctx.append(_services_ctx(settings, db_setup))
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_static("/static", STATIC_DIR)
    for part in (*CHANNELS, *FEATURES):
        part.setup(app, settings)
    if settings.redis_url:  # production: the durable outbox runs on the taskiq queue
        from bot.queue import queue_ctx

        app.cleanup_ctx.append(queue_ctx(settings))
    else:
        app.cleanup_ctx.append(_outbox_ctx(settings))
    return app
