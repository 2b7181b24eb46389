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
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import aiohttp

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

    @classmethod
    def from_settings(cls, settings: Settings) -> "AccountQueries | None":
        if not settings.bss_api_base:
            return None
        return cls(settings.bss_api_base.rstrip("/"), settings.bss_secret, settings.bss_timeout_seconds)

    async def ask(self, code: str, phone: str, locale: str) -> str | None:
        """The API's answer for ``phone``; None when it does not know the code."""
        body = json.dumps({"code": code, "phone": phone, "locale": locale}, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(self.secret, ts, body)}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.post(f"{self.base_url}/v1/account-queries", data=body, headers=headers) as resp:
                    if resp.status == 404:
                        return None
                    if resp.status != 200:
                        raise QueryUnavailable(f"HTTP {resp.status}")
                    data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise QueryUnavailable(type(exc).__name__) from exc
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise QueryUnavailable("no text in the answer")
        return text.strip()[:1000]
