"""Phone-credit / data top-ups through an HTTP provider with HMAC-signed requests and callbacks.

Wire format (what a provider, or ``tests/fakes/topup.py``, speaks):
``POST {BOT_TOPUP_API_BASE}/v1/topups`` JSON ``{"order_id", "phone", "amount", "kind", "callback_url"}``
with headers ``X-Timestamp`` and ``X-Signature = hex(HMAC-SHA256(secret, "<ts>.<body>"))``;
the answer is ``{"provider_ref": "...", "status": "accepted"}`` (the same order id again is
answered with the same ref: submitting is safe to retry). The outcome arrives at
``POST /api/v1/topup/callback`` JSON ``{"order_id", "provider_ref", "status": "success"|"failed",
"reason"}``, signed the same way.
``GET {BOT_TOPUP_API_BASE}/v1/topups/<order_id>`` (signed over the body ``GET /v1/topups/<order_id>``)
answers an order's state ``{"order_id", "provider_ref", "status": "processing"|"success"|"failed",
"reason"}``, or 404 for an order the provider never received: reconciliation asks it when a
callback is late (``python -m bot rewards reconcile``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

SIGNATURE_WINDOW_SECONDS = 300


class TopupError(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class TopupOrder:
    order_id: str
    phone: str
    amount: int
    kind: str  # credit | data
    callback_url: str


@dataclass(frozen=True)
class TopupStatus:
    """What the provider says about one order; ``status`` None: it never received it."""

    order_id: str
    status: str | None  # processing | success | failed | None (unknown to the provider)
    provider_ref: str = ""
    reason: str = ""


class TopupProvider(Protocol):
    async def submit(self, order: TopupOrder) -> str: ...

    async def status(self, order_id: str) -> TopupStatus: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None) -> bool:
    """Constant-time check of a signed body within the replay window."""
    if not secret or not timestamp.isdigit() or not signature:
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class HttpTopupProvider:
    """Production adapter: aiohttp, short timeouts, 4xx permanent, 5xx/network retryable."""

    def __init__(self, base_url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def submit(self, order: TopupOrder) -> str:
        body = json.dumps(order.__dict__, ensure_ascii=False, separators=(",", ":")).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(self.secret, ts, body)}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.post(f"{self.base_url}/v1/topups", data=body, headers=headers) as resp:
                    text = await resp.text()
                    if resp.status >= 500 or resp.status == 429:
                        raise TopupError(f"provider HTTP {resp.status}", permanent=False)
                    if resp.status >= 400:
                        raise TopupError(f"provider refused: HTTP {resp.status} {text[:200]}", permanent=True)
                    try:
                        ref = str(json.loads(text)["provider_ref"])
                    except (ValueError, KeyError, TypeError) as exc:
                        raise TopupError("provider answer without provider_ref", permanent=False) from exc
                    return ref[:128]
        except aiohttp.ClientError as exc:
            raise TopupError(f"{type(exc).__name__}: {exc}"[:200], permanent=False) from exc
        except TimeoutError as exc:
            raise TopupError("provider timed out", permanent=False) from exc

    async def status(self, order_id: str) -> TopupStatus:
        """The provider's view of one order (raises TopupError when it cannot be asked)."""
        path = f"/v1/topups/{order_id}"
        ts = str(int(time.time()))
        headers = {"X-Timestamp": ts, "X-Signature": sign(self.secret, ts, f"GET {path}".encode())}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.get(f"{self.base_url}{path}", headers=headers) as resp:
                    text = await resp.text()
                    if resp.status == 404:
                        return TopupStatus(order_id, None)
                    if resp.status >= 400:
                        raise TopupError(f"provider status HTTP {resp.status}", permanent=resp.status < 500)
                    try:
                        data = json.loads(text)
                        state = str(data["status"])
                    except (ValueError, KeyError, TypeError) as exc:
                        raise TopupError("provider status answer without status", permanent=False) from exc
                    if state not in ("processing", "success", "failed"):
                        raise TopupError(f"provider status {state[:40]!r} unknown", permanent=False)
                    return TopupStatus(
                        order_id, state, str(data.get("provider_ref", ""))[:128], str(data.get("reason", ""))[:200]
                    )
        except aiohttp.ClientError as exc:
            raise TopupError(f"{type(exc).__name__}: {exc}"[:200], permanent=False) from exc
        except TimeoutError as exc:
            raise TopupError("provider timed out", permanent=False) from exc
