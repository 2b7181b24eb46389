"""Signature, XML parsing and rendering, the menu file, and the menu command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from wechatpy.utils import check_signature

from bot.channels.wechat import signature
from bot.channels.wechat.inbound import BadMessage, to_inbound
from bot.channels.wechat.menu import MenuError, load_menu
from bot.channels.wechat.render import MAX_TEXT_BYTES, cdata, custom_message, fit, passive_xml, text_xml
from bot.channels.wechat.xmlparse import XmlError, XmlTooLarge, parse_xml
from bot.core.i18n import get_translator
from bot.core.messages import Card, Choice, Reply
from tests.fakes.wechat_api import wechat_api_fixture  # noqa: F401  (fixture)

_ = get_translator().bind("zh_CN")
# what a WeChat text can carry: any character XML 1.0 allows
xml_text = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\x00\r\ufffe\uffff", max_codepoint=0x10FFFF
    ).filter(lambda c: c in "\t\n" or ord(c) >= 0x20),
    max_size=200,
)
token_chars = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32)


@given(token_chars, st.integers(0, 2**31), token_chars)
def test_signature_matches_wechatpy(token: str, ts: int, nonce: str) -> None:
    sig = signature.sign(token, str(ts), nonce)
    check_signature(token, sig, str(ts), nonce)  # wechatpy's reference check raises if different
    assert signature.verify(sig, token, str(ts), nonce)
    assert not signature.verify(sig, token + "x", str(ts), nonce)


def test_freshness_window() -> None:
    now = 1_800_000_000
    assert signature.fresh(str(now - 299), 300, now=now)
    assert not signature.fresh(str(now - 301), 300, now=now)
    assert not signature.fresh(str(now + 400), 300, now=now)
    for bad in ("", "abc", "-5", "1" * 20):
        assert not signature.fresh(bad, 300, now=now)


@given(xml_text, xml_text)
def test_rendered_text_parses_back_exactly(openid: str, content: str) -> None:
    openid = openid or "o"
    parsed = parse_xml(text_xml(openid, "gh_x", content).encode("utf-8"))
    assert parsed["ToUserName"] == openid
    assert parsed["Content"] == fit(content)  # "]]>" and friends survive the CDATA


@given(st.binary(max_size=512))
def test_parser_only_ever_raises_xml_error(body: bytes) -> None:
    try:
        result = parse_xml(body)
    except XmlError:
        return
    assert isinstance(result, dict)


def test_parser_refuses_entities_and_size() -> None:
    bomb = b'<!DOCTYPE x [<!ENTITY a "x">]><xml><A>&a;</A></xml>'
    with pytest.raises(XmlError):
        parse_xml(bomb)
    with pytest.raises(XmlTooLarge):
        parse_xml(b"<xml><A>" + b"x" * (64 * 1024) + b"</A></xml>")
    assert parse_xml(b"<xml><A>1</A><Info><B>2</B></Info><A>3</A></xml>") == {"A": "1", "Info.B": "2"}


def test_cdata_never_closes_early() -> None:
    assert parse_xml(f"<xml><C>{cdata('a]]>b')}</C></xml>".encode())["C"] == "a]]>b"


@given(st.text(max_size=3000))
def test_fit_respects_wechat_byte_limit(text: str) -> None:
    out = fit(text)
    assert len(out.encode("utf-8")) <= MAX_TEXT_BYTES
    assert out == text or out.endswith("…")


def test_inbound_mapping() -> None:
    base = {"ToUserName": "gh", "FromUserName": "oX", "CreateTime": "1700000000"}
    text = to_inbound({**base, "MsgType": "text", "Content": " hi ", "MsgId": "42"})
    assert text.incoming and text.incoming.text == "hi" and text.incoming.msg_id == "42"
    sub = to_inbound({**base, "MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_fw_t0k"})
    assert sub.incoming and sub.incoming.event == "subscribe" and sub.incoming.payload == "fw_t0k"
    assert sub.incoming.msg_id == "ev:oX:1700000000:subscribe"
    scan = to_inbound({**base, "MsgType": "event", "Event": "SCAN", "EventKey": "fw_t0k"})
    assert scan.incoming and (scan.incoming.event, scan.incoming.payload) == ("scan", "fw_t0k")
    click = to_inbound({**base, "MsgType": "event", "Event": "CLICK", "EventKey": "kb:7"})
    assert click.incoming and (click.incoming.event, click.incoming.payload) == ("click", "kb:7")
    assert to_inbound({**base, "MsgType": "image", "MsgId": "1"}).media == "image"
    assert to_inbound({**base, "MsgType": "event", "Event": "LOCATION"}).incoming is None
    with pytest.raises(BadMessage):
        to_inbound({"MsgType": "text"})


def test_passive_rendering_news_and_numbered_fallback() -> None:
    card = Card(title="5G", description="d", url="https://e.com/a")
    news = parse_xml(passive_xml(Reply(text="t", cards=[card]), to_user="o", from_user="gh", _=_).encode())
    assert news["MsgType"] == "news" and news["Articles.item.Url"] == "https://e.com/a"
    two = Reply(text="t", cards=[card, card])
    text = parse_xml(passive_xml(two, to_user="o", from_user="gh", _=_).encode())
    assert text["MsgType"] == "text" and "https://e.com/a" in text["Content"]  # 2 articles don't fit a message reply
    event = parse_xml(passive_xml(two, to_user="o", from_user="gh", _=_, max_articles=8).encode())
    assert event["MsgType"] == "news" and event["ArticleCount"] == "2"
    choices = Reply(text="选一个", choices=[Choice("甲", "a:1"), Choice("乙", "b:2")])
    body = parse_xml(passive_xml(choices, to_user="o", from_user="gh", _=_).encode())["Content"]
    assert "回复 1：甲" in body and "回复 2：乙" in body


def test_custom_message_links_keep_actions_and_escape_labels() -> None:
    reply = Reply(text="满意吗？" * 400, choices=[Choice('满意 & "好"', "sv:5"), Choice("不满意", "sv:1")])
    msg = custom_message("oX", reply, _)
    content = msg["text"]["content"]
    assert len(content.encode("utf-8")) <= MAX_TEXT_BYTES
    assert "msgmenuid=sv:5" in content and "msgmenuid=sv:1" in content  # links survive the cut
    assert "&amp;" in content and "msgmenucontent=满意 好" in content
    odd = custom_message("oX", Reply(text="q", choices=[Choice("x", "has space")]), _)
    assert "bizmsgmenu" not in odd["text"]["content"] and "回复 1：x" in odd["text"]["content"]


# --- menu ---------------------------------------------------------------------------------------------
MENU = """
button:
  - {name: 查流量, type: click, key: "kb:12"}
  - name: 更多
    sub_button:
      - {name: 帮助, type: click, key: 帮助}
      - {name: 官网, type: view, url: "https://example.com"}
"""


def test_menu_file_checks_wechat_rules(tmp_path: Path) -> None:
    good = tmp_path / "m.yaml"
    good.write_text(MENU, encoding="utf-8")
    body = load_menu(good).to_wechat()
    assert body == {
        "button": [
            {"name": "查流量", "type": "click", "key": "kb:12"},
            {
                "name": "更多",
                "sub_button": [
                    {"name": "帮助", "type": "click", "key": "帮助"},
                    {"name": "官网", "type": "view", "url": "https://example.com"},
                ],
            },
        ]
    }
    for bad, words in [
        ("button: []", "button"),
        ("button:\n" + "  - {name: a, type: click, key: k}\n" * 4, "button"),
        ("button:\n  - {name: 这是一个非常长的按钮名字, type: click, key: k}", "16 bytes"),
        ("button:\n  - {name: a, type: view}", "url"),
        ("button:\n  - {name: a, type: click}", "key"),
        ("[1, 2", "YAML"),
    ]:
        f = tmp_path / "bad.yaml"
        f.write_text(bad, encoding="utf-8")
        with pytest.raises(MenuError, match=words):
            load_menu(f)


async def test_menu_command_publishes_through_the_api(tmp_path: Path, wechat_api, monkeypatch, capsys) -> None:
    import asyncio

    from bot.cli import main
    from bot.core.settings import get_settings

    path = tmp_path / "menu.yaml"
    path.write_text(MENU, encoding="utf-8")
    monkeypatch.setenv("BOT_WECHAT_APPID", wechat_api.appid)
    monkeypatch.setenv("BOT_WECHAT_SECRET", wechat_api.secret)
    monkeypatch.setenv("BOT_WECHAT_API_BASE", wechat_api.base)
    get_settings.cache_clear()
    try:
        # the command runs its own event loop: run it in a thread beside the fake server's loop
        code = await asyncio.to_thread(main, ["wechat", "menu", "set", str(path)])
        assert code == 0 and "menu published" in capsys.readouterr().out
        assert wechat_api.menus[0]["button"][0] == {"name": "查流量", "type": "click", "key": "kb:12"}
        monkeypatch.setenv("BOT_WECHAT_SECRET", "wrong")
        get_settings.cache_clear()
        code = await asyncio.to_thread(main, ["wechat", "menu", "set", str(path)])
        assert code == 1 and "40125" in capsys.readouterr().err
        assert len(wechat_api.menus) == 1
    finally:
        get_settings.cache_clear()


def test_menu_command_dry_run_prints_json(tmp_path: Path, capsys) -> None:
    from bot.cli import main

    path = tmp_path / "menu.yaml"
    path.write_text(MENU, encoding="utf-8")
    assert main(["wechat", "menu", "set", str(path), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["button"][0]["key"] == "kb:12"
    bad = tmp_path / "bad.yaml"
    bad.write_text("button: []", encoding="utf-8")
    assert main(["wechat", "menu", "set", str(bad)]) == 2
    assert "button" in capsys.readouterr().err


def _reference(body: bytes) -> dict[str, str] | None:
    """defusedxml's verdict, flattened the same way (None: refused)."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return None
    if root.tag != "xml":
        return None
    out: dict[str, str] = {}

    def walk(node, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for child in node:
            key = f"{prefix}{child.tag}"
            if len(child):
                walk(child, key + ".")
            elif key not in out:
                out[key] = child.text or ""

    walk(root, "")
    return out


fragments = st.sampled_from(
    [
        "<xml>",
        "</xml>",
        "<A>",
        "</A>",
        "<B>",
        "</B>",
        "x",
        "&amp;",
        "&lt;",
        "&e;",
        " ",
        "<![CDATA[c]]>",
        "<!-- c -->",
        '<!DOCTYPE xml [<!ENTITY e "y">]>',
        "<?pi x?>",
        "\n",
    ]
)


@hsettings(max_examples=400)
@given(st.lists(fragments, max_size=14))
def test_parser_agrees_with_defusedxml(parts: list[str]) -> None:
    body = "".join(parts).encode()
    expected = _reference(body)
    try:
        got = parse_xml(body)
    except XmlError:
        got = None
    assert got == expected  # same fields, and whatever defusedxml refuses we refuse
