"""Where the service may send a browser: one check for every redirect target.

Two kinds of target exist. A *local path* (``next`` after login, "back" after a form) must
stay on this site; an *external link* (an offer's URL, behind ``/o/<token>``) must be a plain
http(s) URL with a host. Browsers are lenient in ways ``urllib`` is not: they drop tabs and
newlines anywhere in a URL, read ``\\`` as ``/``, strip leading spaces and control characters,
and percent-decoding happens in some hops (proxies, frameworks). So anything that a browser
would read differently from us is refused rather than repaired.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MAX_URL = 2000
_DEFAULT_NEXT = "/staff"


def _suspicious(text: str) -> bool:
    """Characters a browser removes or reinterprets: whitespace, controls, backslashes."""
    return any(c.isspace() or ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\\" or c in "\u200b\ufeff" for c in text)


def safe_local_path(target: str | None, default: str = _DEFAULT_NEXT) -> str:
    """``target`` when it is a path on this site, else ``default``.

    A local path starts with one ``/`` followed by something that is not ``/`` or ``\\``,
    has no scheme or host by any reading, and no character a browser would drop or turn into
    a slash, before or after percent-decoding."""
    if not target or len(target) > MAX_URL:
        return default
    candidates = [target]
    decoded = target
    for _ in range(3):  # %252F -> %2F -> /
        decoded = unquote(decoded)
        if decoded == candidates[-1]:
            break
        candidates.append(decoded)
    for text in candidates:
        if _suspicious(text) or not text.startswith("/") or text.startswith("//"):
            return default
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return default
    return target


def safe_external_url(url: str | None) -> bool:
    """Whether ``url`` is an absolute ``http(s)`` link with a host that every reader agrees on.

    Refused: other schemes (``javascript:``, ``data:``), userinfo (``https://bank@evil``),
    whitespace, controls, backslashes, and hosts that are not a plain name or address."""
    if not url or len(url) > MAX_URL or _suspicious(url) or _suspicious(unquote(url)):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return False
    if not url.lower().startswith(parts.scheme + "://"):
        return False
    return all(c.isalnum() or c in "-.:[]" for c in host) and ".." not in host
