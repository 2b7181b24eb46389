"""Issue #23 findings 6 and 8 (proxy part): behind the documented nginx every visitor was
127.0.0.1 and cookies never got ``Secure``; no HSTS. Forwarded headers are now honoured from
BOT_TRUSTED_PROXIES only."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given
from hypothesis import strategies as st

from bot.app import create_app
from bot.staff.auth import create_staff
from bot.staff.models import StaffAudit
from bot.web.client import ProxyConfigError, parse_networks, resolve
from tests.conftest import make_settings

PASSWORD = "secret-pass-1"


@pytest_asyncio.fixture
async def proxied(tmp_path) -> AsyncIterator[TestClient]:  # type: ignore[no-untyped-def]
    """The documented deployment: nginx on this host in front, public URL on https."""
    app = create_app(
        make_settings(
            tmp_path, trusted_proxies="127.0.0.1/32, ::1", public_url="https://csr.example", login_max_failures_per_ip=3
        ),
        db_setup="schema",
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def _login(c: TestClient, username: str, password: str, client_addr: str, proto: str = "https"):  # type: ignore[no-untyped-def]
    return await c.post(
        "/login",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": client_addr, "X-Forwarded-Proto": proto},
        allow_redirects=False,
    )


async def test_behind_trusted_proxy_cookies_are_secure_and_hsts_is_sent(proxied: TestClient) -> None:
    await create_staff("pat", PASSWORD, ["agent"])
    resp = await _login(proxied, "pat", PASSWORD, "203.0.113.9")
    assert resp.status == 302
    assert resp.cookies["everycsr_staff"]["secure"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    row = await StaffAudit.get(action="login", username="pat")
    assert row.ip == "203.0.113.9"  # the visitor, not the proxy
    page = await proxied.get("/chat?lang=en", headers={"X-Forwarded-For": "203.0.113.9"})
    assert page.cookies["lang"]["secure"]  # https public URL behind the proxy: Secure even without the proto header


async def test_per_ip_limits_see_each_visitor_behind_the_proxy(proxied: TestClient) -> None:
    await create_staff("quinn", PASSWORD, ["agent"])
    for i in range(3):  # three failures from one visitor lock that visitor ...
        assert (await _login(proxied, f"x{i}", "wrong-pass", "198.51.100.7")).status == 401
    assert (await _login(proxied, "quinn", PASSWORD, "198.51.100.7")).status == 429
    # ... and nobody else behind the same proxy
    assert (await _login(proxied, "quinn", PASSWORD, "198.51.100.8")).status == 302
    # a client cannot pick its address by writing the header itself: the proxy appends the real one
    spoof = await _login(proxied, "x9", "wrong-pass", "198.51.100.8, 198.51.100.7")
    assert spoof.status == 429


async def test_forwarded_headers_from_anyone_else_are_ignored(client: TestClient) -> None:
    await create_staff("rita", PASSWORD, ["agent"])
    resp = await _login(client, "rita", PASSWORD, "203.0.113.50")
    assert resp.status == 302
    assert not resp.cookies["everycsr_staff"]["secure"]  # plain http, and the proto header is not believed
    assert "Strict-Transport-Security" not in resp.headers
    assert (await StaffAudit.get(action="login", username="rita")).ip == "127.0.0.1"


def test_bad_proxy_setting_is_a_clear_error() -> None:
    with pytest.raises(ProxyConfigError, match="not-an-ip"):
        parse_networks("127.0.0.1, not-an-ip")


addresses = st.ip_addresses().map(str)


@example(peer="::ffff:0:0", hops=[], trusted=["0.0.0.0"])  # found by hypothesis: a mapped IPv4 peer
@given(
    peer=addresses, hops=st.lists(addresses | st.text(max_size=12), max_size=5), trusted=st.lists(addresses, max_size=3)
)
def test_the_client_address_comes_from_the_header_only_through_trusted_hops(peer, hops, trusted) -> None:  # type: ignore[no-untyped-def]
    nets = parse_networks(",".join(trusted))
    got = resolve(peer, [", ".join(hops)] if hops else [], "https", "http", nets)
    # a dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d: it is that IPv4 address
    peer_ip = _unmapped(peer)
    peer_trusted = any(peer_ip in n for n in nets if n.version == peer_ip.version)
    if not peer_trusted:
        assert got.ip in (peer, str(peer_ip)) and got.scheme == "http" and not got.via_proxy
        return
    assert got.via_proxy and got.scheme == "https"
    # what we return is the peer or one of the forwarded addresses, and every hop to its right is trusted
    candidates = [peer, *[p.strip() for h in hops for p in h.split(",")]]
    assert any(got.ip in (str(ipaddress.ip_address(c)), str(_unmapped(c))) for c in candidates if _is_ip(c))


def _unmapped(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(text)
    return addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
