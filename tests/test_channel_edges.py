"""Channels know only the kernel: they hand messages to a port, and paging is split
between the wire (what fits) and the conversation (the rest, the "more" choice)."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.core.channel_registry import SendResult
from bot.core.i18n import Gettext
from bot.core.inbound import MORE_ACTION, PagedChannel
from bot.core.messages import Choice, Incoming, Reply

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "我的流量还剩多少，怎么查？"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (TYPE_CHECKING and function bodies too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{p.relative_to(ROOT)} -> {m}"
        for p in files
        for m in _imports(p)
        if any(m == f or m.startswith(f + ".") for f in forbidden)
    )


def test_channels_import_neither_the_pipeline_nor_conversation_code() -> None:
    files = sorted((ROOT / "bot" / "channels").rglob("*.py")) + sorted((ROOT / "sms_gateway").rglob("*.py"))
    assert len(files) > 20  # the walk found the channels
    forbidden = ("bot.pipeline", "bot.services", "handlers", "community", "gamification")
    assert _offending(files, forbidden) == []


def test_handlers_and_domains_do_not_reach_into_the_pipeline() -> None:
    files = [*sorted((ROOT / "handlers").rglob("*.py")), *sorted((ROOT / "gamification").rglob("*.py"))]
    assert _offending(files, ("bot.pipeline",)) == []


def test_the_port_and_accounts_are_kernel_only() -> None:
    for name in ("inbound.py", "accounts.py"):
        ours = {
            m
            for m in _imports(ROOT / "bot" / "core" / name)
            if m.split(".")[0] in ("bot", "handlers", "community", "gamification", "sms_gateway")
        }
        assert ours and all(m.startswith("bot.core") for m in ours), (name, ours)


class CuttingSender:
    """A channel sender with a 20-character budget: a :class:`PagedChannel`."""

    name = "pager"
    rate_global: float | None = None
    rate_per_chat: float | None = None
    LIMIT = 20

    async def send(self, message, reply: Reply, locale: str) -> SendResult:  # type: ignore[no-untyped-def]
        return SendResult()

    def fit(self, reply: Reply, _: Gettext) -> tuple[Reply, Reply | None]:
        if len(reply.text) <= self.LIMIT:
            return reply, None
        more = Choice(label=_("Show the full text"), action=f"{MORE_ACTION}:")
        head = Reply(
            text=reply.text[: self.LIMIT] + "…", choices=[*reply.choices, more], kind=reply.kind, item_id=reply.item_id
        )
        return head, Reply(
            text=reply.text[self.LIMIT :], choices=list(reply.choices), kind=reply.kind, item_id=reply.item_id
        )


async def test_a_paged_channel_gets_pages_and_a_digit_brings_the_next(services) -> None:
    assert isinstance(CuttingSender(), PagedChannel)
    services.channels.register(CuttingSender())
    pipe = services.pipeline
    whole = (await pipe.process(Incoming(channel="web", user="w-whole", text=QUESTION)))[0]
    assert whole.kind == "answer" and len(whole.text) > 2 * CuttingSender.LIMIT  # not paged: no paged sender

    first = (await pipe.process(Incoming(channel="pager", user="p1", text=QUESTION, msg_id="p1-1")))[0]
    assert first.text == whole.text[:20] + "…"
    assert first.choices[-1].action == f"{MORE_ACTION}:" and first.choices[:-1] == whole.choices
    more = str(len(first.choices))  # the numbered "show the full text" choice
    second = (await pipe.process(Incoming(channel="pager", user="p1", text=more, msg_id="p1-2")))[0]
    assert second.text == whole.text[20:40] + "…" and second.choices[-1].action == f"{MORE_ACTION}:"


async def test_more_with_nothing_kept_says_so(services) -> None:
    replies = await services.pipeline.process(Incoming(channel="web", user="w-more", action=f"{MORE_ACTION}:"))
    assert replies[0].kind == "error" and replies[0].text
