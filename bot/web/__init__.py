"""Server-rendered pages: jinja2 (autoescape on) with the member's or staff's locale."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.core.i18n import DEFAULT_LOCALE, LOCALE_NAMES, LOCALES, Gettext, get_translator, normalize_locale
from bot.core.identity.names import display_name
from bot.core.settings import ROOT
from bot.web.enums import enum_label

BASE_TEMPLATES = ROOT / "bot" / "web" / "templates"
STATIC_DIR = ROOT / "bot" / "web" / "static"


@dataclass
class PageKit:
    """One app's pages: the template directories its features ship and the staff home's links
    (path, label msgid, roles that see it). Per app, so two apps in one process never share
    templates or links."""

    template_dirs: list[Path] = field(default_factory=lambda: [BASE_TEMPLATES])
    staff_links: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    _env: jinja2.Environment | None = None

    def environment(self) -> jinja2.Environment:
        if self._env is None:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader([str(p) for p in self.template_dirs]),
                autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                enable_async=False,
            )
            # real ones are passed per render; the i18n extension adds this method at runtime
            env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
            self._env = env
        return self._env


PAGES = web.AppKey("pages", PageKit)


def page_kit(app: web.Application) -> PageKit:
    """The app's page kit (made on first use by whichever feature mounts first)."""
    if PAGES not in app:
        app[PAGES] = PageKit()
    return app[PAGES]


def add_template_dir(app: web.Application, path: Path) -> None:
    """Let a feature package ship its own templates."""
    kit = page_kit(app)
    if path not in kit.template_dirs:
        kit.template_dirs.append(path)
        kit._env = None


def add_staff_link(app: web.Application, path: str, label: str, roles: tuple[str, ...] = ()) -> None:
    """Put a feature's page on the staff home (``label`` marked with ``N_``; ``roles``: who sees it,
    empty for every staff member)."""
    entry = (path, label, roles)
    if entry not in page_kit(app).staff_links:
        page_kit(app).staff_links.append(entry)


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
        page_kit(request.app)
        .environment()
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
