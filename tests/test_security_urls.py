"""Issue #23 finding 4: one URL-safety helper for every redirect (``next`` after login, offer
links), against control characters, backslashes, schemes and encoded forms."""

from __future__ import annotations

import re
from urllib.parse import unquote, urljoin, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from bot.staff.auth import create_staff
from bot.web.urls import safe_external_url, safe_local_path

BASE = "https://csr.example/login"
TOKENS = [
    "/",
    "//",
    "\\",
    "\t",
    "\r",
    "\n",
    " ",
    "\x00",
    "\x1f",
    "\x7f",
    "\u200b",
    ":",
    "@",
    ".",
    "?",
    "#",
    "%2F",
    "%2f",
    "%5C",
    "%09",
    "%0d",
    "%0A",
    "%252F",
    "%20",
    "evil.example",
    "csr.example",
    "javascript:",
    "http:",
    "https:",
    "data:",
    "staff",
    "inbox",
    "a",
    "1",
    "%",
    "&",
    "=",
    "[::1]",
    "127.0.0.1",
]
urlish = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join) | st.text(max_size=30)


def browser_reads(base: str, location: str) -> tuple[str, str]:
    """(scheme, host) a browser resolves ``location`` to, after the WHATWG parser's clean-up:
    leading/trailing C0 controls and spaces stripped, tabs and newlines removed, ``\\`` read as
    ``/`` for http(s)."""
    cleaned = location.strip("".join(chr(i) for i in range(0x21)))
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    parts = urlsplit(urljoin(base, cleaned))
    return parts.scheme, (parts.hostname or "")


@given(urlish)
def test_local_paths_stay_on_this_site_by_every_reading(target: str) -> None:
    result = safe_local_path(target, "/staff")
    if result == "/staff":
        return
    assert result == target
    for reading in {target, unquote(target), unquote(unquote(target))}:
        assert browser_reads(BASE, reading) == ("https", "csr.example"), reading


@given(urlish)
def test_external_links_are_plain_http_with_one_host(url: str) -> None:
    if not safe_external_url(url):
        return
    scheme, host = browser_reads(BASE, url)
    assert scheme in ("http", "https") and host
    assert urlsplit(url).hostname == host  # we and the browser agree on where it goes
    assert "@" not in urlsplit(url).netloc


def test_known_bypasses() -> None:
    for bad in [
        "/\t/evil.example",
        "/\r/evil.example",
        "/\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        " /staff",
        "staff",
        "",
    ]:
        assert safe_local_path(bad, "/staff") == "/staff", bad
    for good in ["/staff", "/inbox/t/12?tab=notes", "/admin/knowledge?q=%E6%B5%81%E9%87%8F"]:
        assert safe_local_path(good, "/staff") == good
    for bad in [
        "javascript:alert(1)",
        "https://bank.example@evil.example/",
        "http:/\\evil.example",
        "https://evil.example\\@good.example",
        "data:text/html,x",
        "https://",
        "https:evil.example",
        "https://evil .example",
        "https://good.example\t.evil",
    ]:
        assert not safe_external_url(bad), bad
    assert safe_external_url("https://shop.example.com/offer?id=1")


async def test_login_next_cannot_leave_the_site(client) -> None:
    """Through HTTP: the issue's payloads end on /staff."""
    await create_staff("nina", "secret-pass-1", ["agent"])
    for target in [
        "/\t/evil.example",
        "/\r/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
    ]:
        resp = await client.post(
            "/login", data={"username": "nina", "password": "secret-pass-1", "next": target}, allow_redirects=False
        )
        assert resp.status == 302, target
        assert resp.headers["Location"] == "/staff", (target, resp.headers["Location"])
    page = await client.get("/login", params={"next": "/\t/evil.example"})
    assert "evil.example" not in await page.text()
