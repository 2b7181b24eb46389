"""Business codes that look up the member's own account, answered in any chat.

On the operator's SMS number "CXLL" returns the sender's data balance. The same code typed in
web chat, WeChat or Telegram used to answer "text CXLL to the SMS number": a circle. Here the
code is put to the operator's account-query API for the member's number (the SMS sender's own
number, or the phone a member verified with 绑定手机 on any channel), and its answer is the
reply. Only codes of knowledge items tagged as a query (a tag ending in 查询) are put to the
API: a code that orders or cancels something is never executed from a chat.

Wire format (what an operator's API, or ``tests/fakes/bss.py``, speaks):
``POST {BOT_BSS_API_BASE}/v1/account-queries`` JSON ``{"code", "phone", "locale"}`` signed like
the top-up provider (``X-Timestamp``, ``X-Signature = hex(HMAC-SHA256(secret, "<ts>.<body>"))``);
the answer is ``{"text": "..."}``; 404 = the API does not know the code.

Queries go through the process's shared HTTP session (``Services.http``: connection pool,
keep-alive, opened and closed by the app): a session per query paid a TCP (and TLS) handshake
on every code a member typed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from bot.core.services import Services
from bot.core.settings import Settings
from community.models import KnowledgeItem
from gamification.topup import sign

log = logging.getLogger(__name__)


class QueryUnavailable(Exception):
    """The API did not answer usefully (down, slow, refused): say so, never guess."""


def is_account_query(item: KnowledgeItem) -> bool:
    """Rules as data: the knowledge item's tags say whether its code reads an account."""
    return bool(item.sms_code) and any(str(t).endswith("查询") for t in (item.tags or ()))


@dataclass(frozen=True)
class AccountQueries:
    base_url: str
    secret: str
    timeout: float
    # the process's shared session; None (a one-off caller): a session for the one query
    session: aiohttp.ClientSession | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, session: aiohttp.ClientSession | None = None) -> "AccountQueries | None":
        if not settings.bss_api_base:
            return None
        return cls(settings.bss_api_base.rstrip("/"), settings.bss_secret, settings.bss_timeout_seconds, session)

    @classmethod
    def from_services(cls, services: Services) -> "AccountQueries | None":
        """The process's client (shared session) when the app built one, else a one-off."""
        return cls.from_settings(services.settings, services.http)

    async def ask(self, code: str, phone: str, locale: str) -> str | None:
        """The API's answer for ``phone``; None when it does not know the code."""
        body = json.dumps({"code": code, "phone": phone, "locale": locale}, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(self.secret, ts, body)}
        try:
            if self.session is not None:
                data = await self._post(self.session, body, headers)
            else:
                async with aiohttp.ClientSession() as session:
                    data = await self._post(session, body, headers)
            if data is None:
                return None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise QueryUnavailable(type(exc).__name__) from exc
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise QueryUnavailable("no text in the answer")
        return text.strip()[:1000]

    async def _post(self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> object | None:
        """The decoded answer; None on 404 (the API does not know the code)."""
        async with session.post(
            f"{self.base_url}/v1/account-queries",
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise QueryUnavailable(f"HTTP {resp.status}")
            data: object = await resp.json(content_type=None)
            return data
