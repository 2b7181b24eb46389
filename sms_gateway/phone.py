"""Phone numbers in, E.164 out: every SMS address passes through here before use."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """A number we must not send to; the message says why, for the member or the agent."""


def normalize(raw: str, region: str = "CN") -> str:
    """``raw`` as E.164 (``+8613800138000``), parsed in ``region`` when it has no ``+``."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > 32:
        raise InvalidPhoneNumber("phone number is too long")
    try:
        number = phonenumbers.parse(text, region.upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {text!r} ({exc._msg})") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhoneNumber(f"{text!r} has the wrong number of digits for its country")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"{text!r} is not a valid number in its numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def from_smpp(addr: str, ton: int, region: str = "CN") -> str:
    """An SMPP source/destination address to E.164 (TON 1 = international, no '+')."""
    digits = addr.strip()
    if ton == 1 and not digits.startswith("+"):
        digits = "+" + digits
    return normalize(digits, region)


def to_smpp(e164: str) -> str:
    """E.164 to an SMPP international address (TON 1, NPI 1): digits without '+'."""
    return e164.lstrip("+")
