"""Server-rendered pages: jinja2 (autoescape on) with the member's or staff's locale."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from bot.core.i18n import DEFAULT_LOCALE, LOCALE_NAMES, LOCALES, Gettext, get_translator, normalize_locale
from bot.core.identity.names import display_name
from bot.core.settings import ROOT
from bot.web.enums import enum_label

TEMPLATE_DIRS = [ROOT / "bot" / "web" / "templates"]
STATIC_DIR = ROOT / "bot" / "web" / "static"

_env: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in TEMPLATE_DIRS]),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            extensions=["jinja2.ext.i18n"],
            enable_async=False,
        )
        # real ones are passed per render; the i18n extension adds this method at runtime
        _env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    return _env


def add_template_dir(path: Any) -> None:
    """Let a feature package ship its own templates."""
    global _env
    TEMPLATE_DIRS.append(path)
    _env = None


def request_locale(request: web.Request) -> str:
    chosen = request.query.get("lang") or request.cookies.get("lang")
    if chosen in LOCALES:
        return chosen
    for part in request.headers.get("Accept-Language", "").split(","):
        loc = normalize_locale(part.split(";")[0])
        if loc:
            return loc
    return DEFAULT_LOCALE


def staff_text(request: web.Request, msgid: str, **params: Any) -> str:
    """A message (marked with ``N_``) in the reader's language, for plain-text answers."""
    return get_translator().gettext(request_locale(request), msgid, **params)


def bad_request(request: web.Request, msgid: str, **params: Any) -> web.HTTPBadRequest:
    """A 400 whose text is ``msgid`` (marked with ``N_``) in the reader's language."""
    return web.HTTPBadRequest(text=staff_text(request, msgid, **params))


def page_gettext(request: web.Request) -> Gettext:
    """``_(msgid, **params)`` in the page's language, for text a view prepares (names, labels)."""
    return get_translator().bind(request_locale(request))


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    locale = request_locale(request)
    tr = get_translator().translations(locale)

    def gettext(msgid: str, **kw: Any) -> str:
        text = tr.gettext(msgid)
        return text % kw if kw else text

    def ngettext(s: str, p: str, n: int, **kw: Any) -> str:
        text = tr.ngettext(s, p, n)
        return text % {"num": n, **kw}

    from bot.web.client import set_cookie
    from bot.web.headers import csp_nonce

    def enum(kind: str, value: object) -> str:
        return enum_label(gettext, kind, value)

    def member_name(member: Any) -> str:
        return display_name(member, gettext)

    html = (
        environment()
        .get_template(template)
        .render(
            gettext=gettext,
            ngettext=ngettext,
            _=gettext,
            enum_label=enum,
            locale=locale,
            locales=LOCALE_NAMES,
            member_name=member_name,
            request=request,
            csp_nonce=csp_nonce(request),
            **context,
        )
    )
    resp = web.Response(text=html, status=status, content_type="text/html")
    if request.query.get("lang") in LOCALES:
        set_cookie(resp, request, "lang", request.query["lang"], max_age=365 * 86400, httponly=False)
    return resp
