"""GSM 03.38 / UCS-2 encoding, segmentation and reassembly, incl. property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms_gateway.encoding import (
    DC_GSM,
    DC_UCS2,
    GSM_BASIC,
    GSM_EXTENSION,
    Concat,
    EncodingError,
    Reassembler,
    count_segments,
    decode_body,
    decode_gsm,
    encode_gsm,
    is_gsm,
    pack_septets,
    plan,
    reassemble,
    segment,
    split_udh,
    unpack_septets,
)
from sms_gateway.phone import InvalidPhoneNumber, from_smpp, normalize

GSM_CHARS = [c for c in GSM_BASIC if c != "\x1b"] + list(GSM_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=1200)
any_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=700)
mixed = st.one_of(
    gsm_text, any_text, st.text(alphabet=st.sampled_from(GSM_CHARS + ["😀", "𠀀", "€", "`", "中"]), max_size=900)
)


@settings(max_examples=300, deadline=None)
@given(text=mixed, ref=st.integers(0, 255))
def test_round_trip_and_140_octet_limit(text: str, ref: int) -> None:
    try:
        segs = segment(text, ref)
    except EncodingError:
        assert plan(text).count > 255
        return
    assert reassemble(segs) == text
    assert len(segs) == count_segments(text)
    for s in segs:
        assert s.tp_ud_octets <= 140
        assert "".join(x.text for x in segs) == text
    if len(segs) > 1:
        assert all(s.esm_class == 0x40 and s.udh[3] == ref for s in segs)


@settings(max_examples=200, deadline=None)
@given(septets=st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), fill=st.integers(0, 6))
def test_septet_packing_round_trips(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert unpack_septets(packed, len(septets), fill) == septets


@settings(max_examples=200, deadline=None)
@given(text=gsm_text)
def test_gsm_text_stays_gsm(text: str) -> None:
    assert is_gsm(text)
    assert decode_gsm(encode_gsm(text)) == text
    assert plan(text).data_coding == DC_GSM


def test_exact_boundaries() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("a" * 306) == 2 and count_segments("a" * 307) == 3
    assert count_segments("€" * 80) == 1  # each € is an escape pair: 160 septets
    assert count_segments("€" * 81) == 2
    assert count_segments("中" * 70) == 1 and count_segments("中" * 71) == 2
    assert count_segments("中" * 134) == 2 and count_segments("中" * 135) == 3
    assert count_segments("") == 1


def test_escape_pair_is_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the € would straddle septets 153/154
    segs = segment(text, 1)
    assert [s.text for s in segs] == ["a" * 152, "€" + "b" * 10]
    assert segs[0].payload[-1] != 0x1B
    assert all(len(s.payload) <= 153 for s in segs)


def test_surrogate_pair_is_never_split() -> None:
    text = "中" * 66 + "😀" + "x" * 5  # 66 units + a pair would be 68 > 67
    segs = segment(text, 2)
    assert segs[0].text == "中" * 66 and segs[1].text.startswith("😀")
    for s in segs:
        s.payload.decode("utf-16-be")  # each part decodes on its own: no lone surrogate


def test_backtick_forces_ucs2_not_section_sign() -> None:
    segs = segment("price `5`", 0)
    assert segs[0].data_coding == DC_UCS2
    assert decode_body(segs[0].payload, DC_UCS2) == "price `5`"
    assert "§" not in reassemble(segs)


def test_rare_cjk_and_emoji_round_trip() -> None:
    text = "𠀀𪚥😀👍🏽" * 30
    assert reassemble(segment(text, 9)) == text


def test_reassembler_joins_out_of_order_and_tolerates_torn_pairs() -> None:
    raw = "😀中".encode("utf-16-be")  # 6 octets; split inside the surrogate pair
    r = Reassembler()
    assert r.add("+86", Concat(5, 2, 2), raw[2:], DC_UCS2) is None
    assert r.add("+86", Concat(5, 2, 1), raw[:2], DC_UCS2) == "😀中"
    assert len(r) == 0


def test_reassembler_is_bounded_and_expires() -> None:
    r = Reassembler(max_pending=2, ttl_seconds=10)
    for ref in range(5):
        r.add("+86", Concat(ref, 2, 1), b"a", DC_GSM, now=0.0)
    assert len(r) == 2
    r.add("+87", Concat(1, 2, 1), b"a", DC_GSM, now=100.0)
    assert len(r) == 1


def test_udh_parsing_8_and_16_bit_references() -> None:
    assert split_udh(bytes([5, 0, 3, 7, 2, 1]) + b"hi") == (Concat(7, 2, 1), b"hi")
    assert split_udh(bytes([6, 8, 4, 1, 2, 3, 1]) + b"yo") == (Concat(258, 3, 1), b"yo")
    with pytest.raises(EncodingError):
        split_udh(bytes([9, 0, 3]))
    with pytest.raises(EncodingError):
        split_udh(bytes([5, 0, 3, 7, 2, 3]))  # part 3 of 2


def test_phone_numbers() -> None:
    assert normalize("13800138000") == "+8613800138000"
    assert normalize("+1 (415) 555-2671") == "+14155552671"
    assert from_smpp("8613800138000", 1) == "+8613800138000"
    for bad in ("", "hello", "123", "+86 1380013800099"):
        with pytest.raises(InvalidPhoneNumber):
            normalize(bad)


def test_fit_pages_a_long_reply_and_keeps_the_choices_for_the_last_page() -> None:
    from bot.core.messages import Choice, Reply
    from sms_gateway.continuation import fit, render

    def _(msgid: str, **kw: object) -> str:
        return msgid % kw if kw else msgid

    reply = Reply(
        text="。".join(f"第{i}句话说明流量查询的方法" for i in range(60)),
        choices=[Choice("👍", "fb:up:1"), Choice("👎", "fb:down:1")],
    )
    pages, current = [], reply
    while True:
        head, rest = fit(current, _, 2)
        from sms_gateway.encoding import count_segments

        assert count_segments(render(head, _)) <= 2
        pages.append(head)
        if rest is None:
            break
        assert head.choices[-1].action == "smsmore:" and head.choices[:2] == reply.choices
        current = rest
    assert len(pages) > 3
    assert "".join(p.text.rstrip("…") for p in pages).replace("\n", "") == reply.text
    assert pages[-1].choices == reply.choices
    tiny, rest = fit(Reply(text="x" * 50, choices=[Choice("a" * 400, "a")]), _, 1)
    assert rest is None and count_segments(render(tiny, _)) == 1
