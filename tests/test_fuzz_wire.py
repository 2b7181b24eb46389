"""Fuzzing the wire parsers: whatever arrives, no 500 and no traceback in the answer.

Each channel is fed correctly authenticated requests (signature, secret) with hostile
bodies, so the parsers behind the authentication are what gets fuzzed: malformed JSON
for the web chat API and Telegram, malformed / hostile XML (entities, DOCTYPE, deep
nesting) for WeChat, odd forms for the Twilio-compatible SMS webhook, and raw SMPP
short_message bytes for the UDH / data-coding decoders.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from tests.conftest import make_settings
from tests.fakes.telegram_api import FakeTelegram

WECHAT_TOKEN = "fuzztoken"
SMS_TOKEN = "fuzz-auth-token"
TG_SECRET = "fuzz-secret"
PUBLIC = "http://everycsr.test"

# aiogram warns about update types it does not know: expected for fuzzed updates
pytestmark = pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=12,
)
# objects that look like the real thing, with fields of the wrong type or odd values
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "user": json_values | st.text(max_size=80),
        "text": json_values | st.text(max_size=300),
        "action": json_values | st.text(max_size=200),
        "msg_id": json_values,
        "locale": json_values,
    },
)
update_like = st.fixed_dictionaries(
    {"update_id": st.integers() | json_values},
    optional={
        "message": st.fixed_dictionaries(
            {},
            optional={
                "message_id": json_values | st.integers(),
                "date": json_values | st.integers(),
                "text": json_values | st.text(max_size=100),
                "chat": st.fixed_dictionaries(
                    {},
                    optional={
                        "id": json_values | st.integers(),
                        "type": st.sampled_from(["private", "group", "x", ""]),
                    },
                ),
                "from": st.fixed_dictionaries(
                    {}, optional={"id": json_values | st.integers(), "is_bot": json_values, "first_name": json_values}
                ),
            },
        ),
        "callback_query": json_values,
    },
)
xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def wechat_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["raw", "fields", "entity", "deep"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "entity":
        return (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "' + b"A" * 50 + b'"><!ENTITY b "&a;&a;&a;&a;">'
            b'<!ENTITY c SYSTEM "file:///etc/passwd">]><xml><Content>&b;&c;</Content></xml>'
        )
    if kind == "deep":
        depth = draw(st.integers(50, 3000))
        return (b"<a>" * depth) + (b"</a>" * draw(st.integers(0, depth)))
    fields = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "ToUserName",
                    "FromUserName",
                    "CreateTime",
                    "MsgType",
                    "Content",
                    "MsgId",
                    "Event",
                    "EventKey",
                    "MediaId",
                    "Encrypt",
                    "Recognition",
                ]
            ),
            xml_text,
            max_size=8,
        )
    )
    from xml.sax.saxutils import escape

    inner = "".join(
        f"<{k}><![CDATA[{v.replace(']]>', '')}]]></{k}>" if draw(st.booleans()) else f"<{k}>{escape(v)}</{k}>"
        for k, v in fields.items()
    )
    return f"<xml>{inner}</xml>".encode("utf-8", "surrogatepass")


def assert_clean(status: int, body: str) -> None:
    assert status < 500, body[:300]
    assert "Traceback" not in body and 'File "' not in body, body[:300]


@pytest.fixture
async def wire(tmp_path: Path) -> AsyncIterator[TestClient]:
    fake = await FakeTelegram().start()
    s = make_settings(
        tmp_path,
        public_url=PUBLIC,
        wechat_token=WECHAT_TOKEN,
        wechat_appid="wxfuzz",
        sms_provider="twilio",
        sms_auth_token=SMS_TOKEN,
        sms_account_sid="ACfuzz",
        sms_from="+15550001111",
        sms_api_base="http://127.0.0.1:9",
        telegram_token=fake.token,
        telegram_api_base=fake.url,
        telegram_webhook_secret=TG_SECRET,
        outbox_enabled=False,
    )
    app = create_app(s, db_setup="schema")
    async with TestClient(TestServer(app)) as client:
        yield client
    await fake.close()


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        chat_like.map(lambda v: json.dumps(v).encode()),
    )
)
async def test_chat_api_never_500(wire: TestClient, body: bytes) -> None:
    resp = await wire.post("/api/v1/chat", data=body, headers={"Content-Type": "application/json"})
    text = await resp.text()
    assert_clean(resp.status, text)
    assert resp.content_type == "application/json"
    if resp.status >= 400:
        assert set(json.loads(text)) == {"error"}


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        update_like.map(lambda v: json.dumps(v).encode()),
    )
)
async def test_telegram_webhook_never_500(wire: TestClient, body: bytes) -> None:
    resp = await wire.post(
        "/telegram/webhook",
        data=body,
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    assert_clean(resp.status, await resp.text())


@FUZZ
@given(body=wechat_bodies())
async def test_wechat_callback_never_500(wire: TestClient, body: bytes) -> None:
    from bot.channels.wechat.signature import sign

    ts, nonce = str(int(time.time())), secrets.token_hex(6)  # a fresh nonce: repeats are refused as replays
    query = urlencode({"signature": sign(WECHAT_TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce})
    resp = await wire.post(f"/wechat?{query}", data=body, headers={"Content-Type": "text/xml"})
    text = await resp.text()
    assert_clean(resp.status, text)
    assert "root:" not in text  # an external entity is never expanded


@FUZZ
@given(
    form=st.dictionaries(
        st.sampled_from(["From", "To", "Body", "MessageSid", "SmsSid", "NumMedia", "X"]) | st.text(max_size=10),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
        | st.sampled_from(["+8613800138000", "13800138000", "+1", "", "SM" + "a" * 32]),
        max_size=6,
    )
)
async def test_sms_inbound_never_500(wire: TestClient, form: dict[str, str]) -> None:
    from sms_gateway.twilio import signature

    sig = signature(SMS_TOKEN, PUBLIC + "/sms/inbound", list(form.items()))
    resp = await wire.post(
        "/sms/inbound",
        data=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    )
    assert_clean(resp.status, await resp.text())


@settings(max_examples=300, deadline=None)
@given(short_message=st.binary(max_size=200), data_coding=st.integers(0, 255), udhi=st.booleans())
def test_smpp_short_message_decoding_fails_only_cleanly(short_message: bytes, data_coding: int, udhi: bool) -> None:
    from sms_gateway.encoding import EncodingError, decode_body, split_udh

    try:
        body = split_udh(short_message)[1] if udhi else short_message
        text = decode_body(body, data_coding)
    except EncodingError:
        return
    assert isinstance(text, str)
