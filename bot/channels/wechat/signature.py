"""WeChat callback signatures: sha1 over the sorted token/timestamp/nonce[/Encrypt].

Comparison is constant-time, and a timestamp outside the configured window is
refused so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(*parts: str) -> str:
    """The signature WeChat computes: sha1 of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def verify(signature: str | None, *parts: str) -> bool:
    """Whether ``signature`` is the one WeChat would send for ``parts``."""
    if not signature or len(signature) != 40:
        return False
    return hmac.compare_digest(sign(*parts), signature.lower())


def fresh(timestamp: str | None, window_seconds: int, *, now: float | None = None) -> bool:
    """Whether a callback's ``timestamp`` lies within ``window_seconds`` of our clock."""
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    return abs(current - int(timestamp)) <= window_seconds
