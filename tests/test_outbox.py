"""The embedded outbox with real senders: store first, send once, honour opt-out."""

from __future__ import annotations


from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, Member
from bot.core.accounts import get_or_create_account
from tests.outbox_waits import wait_status
from tests.community_helpers import as_member


async def test_message_is_stored_then_sent_once(client, services) -> None:
    account = await get_or_create_account("web", "out-1")
    out = Outgoing(
        channel="web",
        address="out-1",
        reply=Reply(text="您好，客服已回复"),
        member_id=account.member_id,
        purpose="agent",
        idempotency_key="ticket-1-reply-1",
    )
    first = await services.outbox.enqueue(out)
    again = await services.outbox.enqueue(out)
    assert first.id == again.id
    row = await wait_status(first.id, "sent")
    assert row.status == "sent" and row.attempts == 1 and row.provider_ref == f"web-{row.id}"
    updates = await (await client.get("/api/v1/chat/updates", params={**as_member("out-1"), "after": "0"})).json()
    assert [m["text"] for m in updates["messages"]] == ["您好，客服已回复"]


async def test_unsolicited_message_to_opted_out_member_is_suppressed(services) -> None:
    account = await get_or_create_account("web", "out-2")
    await Member.filter(id=account.member_id).update(opted_out=True)
    offer = await services.outbox.to_member(account.member_id, Reply(text="流量包优惠"), purpose="offer")
    agent = await services.outbox.to_member(account.member_id, Reply(text="客服回复"), purpose="agent")
    assert (await wait_status(offer.id, "suppressed")).status == "suppressed"
    assert (await wait_status(agent.id, "sent")).status == "sent"


async def test_channel_without_sender_is_held_with_reason(services) -> None:
    row = await services.outbox.enqueue(Outgoing(channel="carrier-pigeon", address="x", reply=Reply(text="hi")))
    row = await wait_status(row.id, "held")
    assert row.status == "held" and "not configured" in row.last_error


async def test_to_member_uses_the_latest_active_account(services) -> None:
    account = await get_or_create_account("web", "out-3")
    await ChannelAccount.filter(id=account.id).update(active=False)
    assert await services.outbox.to_member(account.member_id, Reply(text="x"), purpose="notification") is None


async def test_choices_of_a_later_message_answer_a_digit(services) -> None:
    from bot.core.messages import Choice, Incoming
    from bot.core.stores import member_state_key

    account = await get_or_create_account("web", "out-4")
    reply = Reply(text="请为本次服务打分", choices=[Choice("满意", "lang:en"), Choice("不满意", "lang:zh_CN")])
    row = await services.outbox.to_member(account.member_id, reply, purpose="survey")
    assert (await wait_status(row.id, "sent")).status == "sent"
    assert (await services.state.get(member_state_key(account.member_id)))["choices"] == ["lang:en", "lang:zh_CN"]
    answered = await services.pipeline.process(Incoming(channel="web", user="out-4", text="1"))
    assert answered[0].kind == "command"
    assert (await Member.get(id=account.member_id)).locale == "en"
