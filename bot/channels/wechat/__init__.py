"""WeChat Official Account channel: ``GET/POST /wechat`` and the customer-service sender.

Inbound: :mod:`.views` (signatures, safe-mode crypto via wechatpy, defusedxml parsing,
passive replies within the deadline). Outbound: :mod:`.sender` over :mod:`.api`
(aiohttp; wechatpy's own client is synchronous). Menu: :mod:`.menu`, ``python -m bot
wechat menu set FILE.yaml``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.channels.wechat.api import WeChatAPI
from bot.channels.wechat.sender import WeChatSender
from bot.channels.wechat.views import WeChatEndpoint
from bot.core.settings import Settings

WECHAT_ENDPOINT: "web.AppKey[WeChatEndpoint]" = web.AppKey("wechat_endpoint")


def setup(app: web.Application, settings: Settings) -> None:
    endpoint = WeChatEndpoint(settings)
    app[WECHAT_ENDPOINT] = endpoint
    app.router.add_get("/wechat", endpoint.verify_url)
    app.router.add_post("/wechat", endpoint.receive)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        api = WeChatAPI(settings.wechat_appid, settings.wechat_secret, base=settings.wechat_api_base)
        if api.configured:
            services.channels.register(WeChatSender(api, services))
        try:
            yield
        finally:
            await endpoint.close()
            await api.close()

    app.cleanup_ctx.append(ctx)
