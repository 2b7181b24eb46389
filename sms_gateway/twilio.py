"""Twilio-compatible HTTP provider: webhook signatures, TwiML, and the Messages REST API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

import aiohttp

from bot.core.channel_registry import SendError

# Twilio error codes that mean "never retry this message"
PERMANENT_ERRORS = {21211, 21212, 21401, 21408, 21604, 21606, 21614, 21617, 21659, 30006}
# the recipient replied STOP to the provider: the number is unreachable for us
UNSUBSCRIBED_ERRORS = {21610}
TWIML_MAX_BODY = 1600  # characters in one <Message>


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 over the URL + each key and value, sorted."""
    data = url + "".join(k + v for k, v in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str) -> bool:
    """Constant-time check; an empty token or header never verifies."""
    if not auth_token or not given:
        return False
    expected = signature(auth_token, url, list(params))
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def twiml(messages: list[str]) -> str:
    """A TwiML ``<Response>`` answering with ``messages`` (none: empty response)."""
    body = "".join(f"<Message>{escape(m)}</Message>" for m in messages)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


@dataclass(frozen=True, slots=True)
class Sent:
    sid: str
    status: str
    num_segments: int | None


class TwilioClient:
    """``POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        status_callback: str = "",
        timeout: float = 15.0,
    ) -> None:
        self.session = session
        self.url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.headers = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}
        self.sender = sender
        self.status_callback = status_callback
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, to: str, body: str) -> Sent:
        form: dict[str, str] = {"To": to, "Body": body}
        if self.sender.startswith("MG"):
            form["MessagingServiceSid"] = self.sender
        else:
            form["From"] = self.sender
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        try:
            async with self.session.post(self.url, data=form, headers=self.headers, timeout=self.timeout) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {}
        except asyncio.TimeoutError as exc:
            # the request may have reached the provider: do not send it twice
            raise SendError("Twilio API timed out", ambiguous=True) from exc
        except aiohttp.ClientConnectionError as exc:
            raise SendError(f"Twilio API unreachable: {exc}") from exc
        if not isinstance(data, Mapping):
            data = {}
        if 200 <= status < 300 and data.get("sid"):
            segs = data.get("num_segments")
            return Sent(str(data["sid"]), str(data.get("status", "")), int(segs) if str(segs or "").isdigit() else None)
        code = data.get("code")
        reason = f"Twilio {status} {code or ''}: {data.get('message', '')}".strip()
        if status == 429:
            raise SendError(reason, retry_after=float(retry_after) if (retry_after or "").isdigit() else None)
        if code in UNSUBSCRIBED_ERRORS:
            raise SendError(reason, unreachable=True)
        if code in PERMANENT_ERRORS or status in (400, 404):
            raise SendError(reason, permanent=True)
        if status in (401, 403):
            raise SendError(reason, hold=True)  # our credentials: fix the settings, then release
        raise SendError(reason)
