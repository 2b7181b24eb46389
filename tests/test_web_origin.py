"""One origin check for every form and member API: scheme, host and port all have to match
(an ``http://`` page of the same host is another origin: a network attacker can write it)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.core.app_keys import SERVICES
from bot.web.cors import origin_of, own_origin, same_origin_post
from tests.conftest import make_settings


def _request(tmp_path: Path, headers: dict[str, str], *, https: bool, **settings: object) -> tuple[web.Request, object]:
    conf = make_settings(tmp_path, **settings)
    app = web.Application()
    app[SERVICES] = mock.Mock(settings=conf)
    req = make_mocked_request(
        "POST",
        "/f/abc/read",
        headers={"Host": "svc.example", **headers},
        app=app,
        sslcontext=mock.Mock() if https else None,
    )
    return req, conf


def test_origin_of_keeps_scheme_host_and_port() -> None:
    assert origin_of("https://Svc.Example:8443/f/x?y=1") == "https://svc.example:8443"
    assert origin_of("javascript:alert(1)") is None and origin_of("//svc.example/x") is None
    assert origin_of("null") is None


def test_own_origin_compares_the_scheme(tmp_path: Path) -> None:
    req, conf = _request(tmp_path, {}, https=True)
    assert own_origin(req, conf, "https://svc.example")
    assert not own_origin(req, conf, "http://svc.example")  # same host, the request came over https
    assert not own_origin(req, conf, "https://svc.example.evil.example")
    plain, conf = _request(tmp_path, {}, https=False)
    assert own_origin(plain, conf, "http://svc.example") and not own_origin(plain, conf, "https://svc.example")


def test_public_url_is_own_with_its_scheme_only(tmp_path: Path) -> None:
    req, conf = _request(tmp_path, {}, https=False, public_url="https://bot.example.com/")
    assert own_origin(req, conf, "https://bot.example.com")
    assert not own_origin(req, conf, "http://bot.example.com")


def test_form_posts_need_own_origin_or_referer(tmp_path: Path) -> None:
    cases = [
        ({"Origin": "https://svc.example"}, True),
        ({"Origin": "http://svc.example"}, False),
        ({"Origin": "null"}, False),  # sandboxed frames, privacy redirects: no vouching origin
        ({"Origin": "https://evil.example", "Referer": "https://svc.example/f/abc"}, False),
        ({"Referer": "https://svc.example/f/abc"}, True),
        ({"Referer": "http://svc.example/f/abc"}, False),
        ({"Referer": "https://evil.example/svc.example"}, False),
        ({}, True),  # no browser said anything: the CSRF token decides
    ]
    for headers, ok in cases:
        req, conf = _request(tmp_path, headers, https=True)
        assert same_origin_post(req, conf) is ok, headers
