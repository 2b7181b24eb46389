"""The object a staff page's URL names, or 404: one rule for every admin page."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from tortoise.models import Model

M = TypeVar("M", bound=Model)

_MAX_ID_DIGITS = 18  # fits a BIGINT; longer digit strings are no id of ours


def path_id(request: web.Request, name: str, what: str) -> int:
    """The numeric id in the URL's ``{name}``; anything else is a 404, never a 500."""
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        raise web.HTTPNotFound(text=f"No such {what}.")
    return int(raw)


async def object_or_404(model: type[M], request: web.Request, name: str, what: str, *related: str) -> M:
    """``model`` with the id in ``{name}`` (and ``related`` joined in), or 404 "No such <what>."."""
    query = model.get_or_none(id=path_id(request, name, what))
    obj = await (query.select_related(*related) if related else query)
    if obj is None:
        raise web.HTTPNotFound(text=f"No such {what}.")
    return obj
