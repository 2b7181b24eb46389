"""Properties of the identity layer's parsers and signers: session cookies, operator hashes,
scoped message ids, chosen names and masked phones."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from hypothesis import given, strategies as st

from bot.channels.webchat import MAX_MSG_ID, scoped_msg_id
from bot.core.identity.codes import BIND_ALPHABET, looks_like_bind_code, looks_like_phone_code, normalize_code
from bot.core.identity.names import MAX_NAME, clean_nickname, display_name, mask_phone
from bot.web.chat_session import (
    IdentityRefused,
    USER_PATTERN,
    session_cookie_value,
    session_id_from_cookie,
    user_hash,
    verified_user,
)
from tests.conftest import make_settings

KEY = "k" * 32
sids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=22, max_size=43)
users = st.from_regex(USER_PATTERN, fullmatch=True)


@given(sid=sids)
def test_signed_cookie_round_trips_and_any_change_is_refused(sid: str) -> None:
    value = session_cookie_value(KEY, sid)
    assert session_id_from_cookie(KEY, value) == sid
    assert session_id_from_cookie("other" + KEY, value) is None
    body, _, sig = value.rpartition(".")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert session_id_from_cookie(KEY, f"{body}.{flipped}") is None
    assert session_id_from_cookie(KEY, body) is None


@given(raw=st.text(max_size=120))
def test_arbitrary_cookies_never_verify(raw: str) -> None:
    assert session_id_from_cookie(KEY, raw) is None


@given(user=users, other=users)
def test_user_hash_selects_exactly_its_user(tmp_path_factory, user: str, other: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path_factory.mktemp("s"), webchat_identity_secret="s3cret")
    good = hmac.new(b"s3cret", user.encode(), hashlib.sha256).hexdigest()
    assert user_hash("s3cret", user) == good
    assert verified_user(settings, user, good) == user
    assert verified_user(settings, user, good.upper()) == user
    if other != user:
        try:
            verified_user(settings, other, good)
        except IdentityRefused:
            pass
        else:
            raise AssertionError("another user's hash was accepted")
    assert "/" not in user  # never a session's account ("session/<id>")


@given(
    a=st.text(min_size=1, max_size=80),
    b=st.text(min_size=1, max_size=80),
    m=st.text(min_size=1, max_size=64),
    n=st.text(min_size=1, max_size=64),
)
def test_scoped_msg_ids_fit_and_never_collide_across_accounts(a: str, b: str, m: str, n: str) -> None:
    x, y = scoped_msg_id(a, m), scoped_msg_id(b, n)
    assert x is not None and y is not None and len(x) <= MAX_MSG_ID and len(y) <= MAX_MSG_ID
    if (a, m) != (b, n) and "#" not in a + b and not a.startswith("#") and not b.startswith("#"):
        assert x != y
    assert scoped_msg_id(a, m) == x and scoped_msg_id(a, None) is None


@given(raw=st.text(max_size=40))
def test_chosen_names_are_clean_short_and_stable(raw: str) -> None:
    name = clean_nickname(raw)
    if name is None:
        return
    assert 1 <= len(name) <= MAX_NAME and name == name.strip()
    assert not any(unicodedata.category(ch).startswith("C") for ch in name)
    assert clean_nickname(name) == name


@given(digits=st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_masked_phone_hides_the_middle(digits: str) -> None:
    masked = mask_phone("+86" + digits)
    assert masked == f"{digits[:3]}****{digits[-4:]}" and len(masked) == 11


def test_display_name_order() -> None:
    class M:
        id, nickname, display_name, phone = 8, "", "", None

    m = M()
    assert display_name(m, lambda s, **kw: "会员" + kw["number"]) == "会员0008"
    m.phone = "+8613800135678"
    assert display_name(m, str) == "138****5678"
    m.display_name = "Tg\u202e Name\n"
    assert display_name(m, str) == "Tg Name"
    m.nickname = "小李"
    assert display_name(m, str) == "小李"


@given(code=st.text(alphabet=BIND_ALPHABET, min_size=8, max_size=8))
def test_code_shapes_are_disjoint(code: str) -> None:
    assert looks_like_bind_code(code) and looks_like_bind_code(code.lower()) and not looks_like_phone_code(code)
    assert normalize_code(f" {code[:4]}-{code[4:]} ") == code
