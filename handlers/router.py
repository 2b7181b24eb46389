"""Routing of one incoming message to one handler, in the manner of aiogram's Router.

Handlers are registered by command word, action prefix, channel event or awaited
conversation state; outer middlewares (moderation, agent ownership) wrap dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.messages import Incoming, Reply
from bot.core.normalize import normalize
from bot.core.state import ConversationState

if TYPE_CHECKING:
    from bot.core.models import ChannelAccount, Member
    from bot.core.services import Services
    from bot.core.i18n import Gettext
    from community.offers.catalog import OfferCatalog
    from gamification.service import Gamification

log = logging.getLogger(__name__)

HandlerResult = list[Reply] | Reply | None
Handler = Callable[["Context"], Awaitable[HandlerResult]]
Middleware = Callable[["Context", Callable[[], Awaitable[list[Reply]]]], Awaitable[list[Reply]]]
# a registering decorator hands the handler back with its own type (``-> Reply`` stays ``Reply``)
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Domains:
    """The domain services one app built for its handlers, as aiogram's workflow data but
    typed: the assembly (``bot/app.py``) builds them once, hands them to the pipeline, and the
    pipeline puts them on every :class:`Context`. The kernel's ``Services`` knows no domain;
    what a handler needs of a domain's per-app instance is reached here."""

    gamification: "Gamification"
    offers: "OfferCatalog"  # the switched-on offers, in this worker's memory


@dataclass
class Context:
    """Everything a handler may use for one message; no wire protocol in sight."""

    incoming: Incoming
    member: "Member"
    account: "ChannelAccount"
    locale: str
    state: ConversationState  # loaded before dispatch, saved after it (bot.pipeline)
    services: "Services"
    domains: Domains  # the app's domain services (ctx.domains.gamification)
    _: "Gettext"
    args: str = ""
    transcript_id: int | None = None
    new_member: bool = False  # this message created the member (nothing of theirs exists yet)
    # the root router dispatching this message (help lists its commands, a menu click or a
    # word that only looks like a command is routed through it)
    root: "Router | None" = None
    # what the handler chose to record about its answer (transcript kind, item, confidence)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return (self.incoming.text or "").strip()

    @property
    def channel(self) -> str:
        return self.incoming.channel


def as_list(result: HandlerResult) -> list[Reply]:
    if result is None:
        return []
    if isinstance(result, Reply):
        return [result]
    return list(result)


@dataclass
class _Command:
    names: tuple[str, ...]  # normalised, for matching
    handler: Handler
    help: str | None  # an N_() msgid: what the help lists beside the command word
    words: tuple[str, ...] = ()  # as written, for showing: "积分", "積分", "points"


@dataclass(frozen=True)
class _Routes:
    """A router tree flattened once: what dispatch looks up per message, first registration wins."""

    commands: dict[str, tuple[int, Handler]]  # normalised word -> (registration order, handler)
    actions: dict[str, Handler]
    events: dict[str, Handler]
    states: dict[str, Handler]
    payloads: dict[str, Handler]
    fallback: Handler | None
    middlewares: tuple[Middleware, ...]


def _compile(tree: list["Router"]) -> _Routes:
    commands: dict[str, tuple[int, Handler]] = {}
    for order, c in enumerate(c for r in tree for c in r._commands):
        for name in c.names:
            commands.setdefault(name, (order, c.handler))

    def first(attr: str) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for r in tree:
            for key, handler in getattr(r, attr).items():
                out.setdefault(key, handler)
        return out

    return _Routes(
        commands=commands,
        actions=first("_actions"),
        events=first("_events"),
        states=first("_states"),
        payloads=first("_payloads"),
        fallback=next((r._fallback for r in tree if r._fallback), None),
        middlewares=tuple(m for r in tree for m in r._middlewares),
    )


class Router:
    def __init__(self, name: str = "root") -> None:
        self.name = name
        self._commands: list[_Command] = []
        self._actions: dict[str, Handler] = {}
        self._events: dict[str, Handler] = {}
        self._states: dict[str, Handler] = {}
        self._payloads: dict[str, Handler] = {}
        self._fallback: Handler | None = None
        self._middlewares: list[Middleware] = []
        self._children: list[Router] = []
        self._tree: list[Router] | None = None  # this router and its descendants, computed once
        self._routes: _Routes | None = None

    # --- registration ----------------------------------------------------------------
    def command(self, *names: str, help: str | None = None) -> Callable[[H], H]:
        """Text commands: ``/points``, ``points`` or a keyword such as ``积分``."""
        keys = tuple(normalize(n.lstrip("/")) for n in names)

        def deco(fn: H) -> H:
            self._commands.append(_Command(keys, fn, help, tuple(n.lstrip("/") for n in names)))
            return fn

        return deco

    def action(self, prefix: str) -> Callable[[H], H]:
        """Button actions ``prefix:args``; the args reach the handler as ``ctx.args``."""

        def deco(fn: H) -> H:
            self._actions[prefix] = fn
            return fn

        return deco

    def event(self, name: str) -> Callable[[H], H]:
        def deco(fn: H) -> H:
            self._events[name] = fn
            return fn

        return deco

    def state(self, name: str) -> Callable[[H], H]:
        """Free text while the conversation awaits ``name`` (``ctx.state.await_``)."""

        def deco(fn: H) -> H:
            self._states[name] = fn
            return fn

        return deco

    def payload(self, prefix: str) -> Callable[[H], H]:
        """Deep-link / QR scene payloads ``prefix_rest`` (``fw_<token>``, ``q_<id>``) that
        arrive with a channel event (Telegram /start, WeChat subscribe/SCAN)."""

        def deco(fn: H) -> H:
            self._payloads[prefix] = fn
            return fn

        return deco

    def fallback(self) -> Callable[[H], H]:
        def deco(fn: H) -> H:
            self._fallback = fn
            return fn

        return deco

    def middleware(self, fn: Middleware) -> Middleware:
        self._middlewares.append(fn)
        return fn

    def include_router(self, router: "Router") -> "Router":
        self._children.append(router)
        self._tree = None
        self._routes = None
        return router

    # --- lookup ----------------------------------------------------------------------------
    def _walk(self) -> list["Router"]:
        # routers are assembled once at start-up; dispatch asks for the tree on every message
        if self._tree is None:
            tree = [self]
            for child in self._children:
                tree.extend(child._walk())
            self._tree = tree
        return self._tree

    def routes(self) -> _Routes:
        # routers are assembled at start-up, before the first message; dispatch looks up here
        if self._routes is None:
            self._routes = _compile(self._walk())
        return self._routes

    def commands(self) -> list[_Command]:
        return [c for r in self._walk() for c in r._commands]

    def find_action(self, action: str) -> tuple[Handler | None, str]:
        prefix, _, args = action.partition(":")
        handler = self.routes().actions.get(prefix)
        return (handler, args) if handler is not None else (None, "")

    def find_command(self, text: str) -> tuple[Handler | None, str]:
        raw = text.strip()
        if raw.startswith("/"):
            raw = raw[1:]
        head, _, rest = raw.partition(" ")
        head = head.split("@", 1)[0]  # Telegram: /points@everycsr_bot
        commands = self.routes().commands
        by_word = commands.get(normalize(head))
        whole = commands.get(normalize(raw)) if raw != head else by_word
        # the command registered first wins when the first word and the whole text name different ones
        if by_word is not None and (whole is None or by_word[0] <= whole[0]):
            return by_word[1], rest.strip()
        if whole is not None:
            return whole[1], ""
        return None, ""

    def find_event(self, name: str) -> Handler | None:
        return self.routes().events.get(name)

    def find_payload(self, payload: str) -> tuple[Handler | None, str]:
        prefix, _, rest = payload.partition("_")
        handler = self.routes().payloads.get(prefix)
        return (handler, rest) if handler is not None else (None, "")

    def find_state(self, name: str) -> Handler | None:
        return self.routes().states.get(name)

    def find_fallback(self) -> Handler | None:
        return self.routes().fallback

    def middlewares(self) -> tuple[Middleware, ...]:
        return self.routes().middlewares

    # --- dispatch ---------------------------------------------------------------------------
    async def dispatch(self, ctx: Context) -> list[Reply]:
        mws = self.middlewares()

        async def call(index: int) -> list[Reply]:
            if index < len(mws):
                return await mws[index](ctx, lambda: call(index + 1))
            return await self._route(ctx)

        return await call(0)

    async def _route(self, ctx: Context) -> list[Reply]:
        inc = ctx.incoming
        handler: Handler | None = None
        if inc.event and inc.payload:
            handler, ctx.args = self.find_payload(inc.payload)
        if handler is not None:
            pass
        elif inc.event:
            handler = self.find_event(inc.event)
            if handler is None:
                return []
        elif inc.action:
            handler, ctx.args = self.find_action(inc.action)
            if handler is None:
                handler = self.find_event("unknown_action")
        else:
            text = ctx.text
            picked = ctx.state.pick(text)
            if picked is not None:
                # "回复 1": a numbered choice on a channel without buttons
                inc.action = picked
                handler, ctx.args = self.find_action(inc.action)
            if handler is None:
                handler, ctx.args = self.find_command(text)
            if handler is None and ctx.state.await_:
                handler = self.find_state(ctx.state.await_)
                ctx.args = text
            if handler is None:
                handler = self.find_fallback()
                ctx.args = text
        if handler is None:
            return []
        return as_list(await handler(ctx))
