"""GSM 03.38 / UCS-2 encoding, exact segment counting, UDH concatenation and reassembly.

Why our own: the generic splitters (smpplib's among them) split GSM escape pairs and
UTF-16 surrogate pairs across parts and send a backtick as '§'. Here a part boundary
never falls inside an escape pair or a surrogate pair, characters outside GSM 03.38
(the backtick included) switch the whole message to UCS-2, and every part fits the
140-octet TP-UD including its user data header.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

# --- GSM 03.38 default alphabet -----------------------------------------------------------
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(GSM_BASIC) == 128
ESC = 0x1B
GSM_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_ENC_BASIC = {ch: i for i, ch in enumerate(GSM_BASIC) if i != ESC}
_DEC_EXT = {v: k for k, v in GSM_EXTENSION.items()}
_GSM_SET = frozenset(_ENC_BASIC) | frozenset(GSM_EXTENSION)
_EXT_SET = frozenset(GSM_EXTENSION)
# str.translate table: each GSM character to its septet(s) as code points 0-127
_TO_SEPTETS = {ord(ch): chr(i) for ch, i in _ENC_BASIC.items()} | {
    ord(ch): "\x1b" + chr(code) for ch, code in GSM_EXTENSION.items()
}

DC_GSM = 0x00  # SMSC default alphabet: GSM 03.38, one septet per octet on the SMPP wire
DC_LATIN1 = 0x03
DC_UCS2 = 0x08

TP_UD_OCTETS = 140
GSM_SINGLE, GSM_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units
MAX_PARTS = 255


class EncodingError(ValueError):
    """Bytes that are not a valid message in the data coding they claim."""


def is_gsm(text: str) -> bool:
    """True when every character is in the GSM basic or extension table."""
    return _GSM_SET.issuperset(text)


def gsm_septets(ch: str) -> tuple[int, ...]:
    if ch in _ENC_BASIC:
        return (_ENC_BASIC[ch],)
    return (ESC, GSM_EXTENSION[ch])


def encode_gsm(text: str) -> bytes:
    """Unpacked septets (one per octet), escapes included."""
    if not is_gsm(text):
        raise EncodingError("text has characters outside GSM 03.38")
    return text.translate(_TO_SEPTETS).encode("latin-1")


def decode_gsm(data: bytes) -> str:
    """Unpacked septets to text; an unknown escape shows its basic character (03.38 §6.2.1.1)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        b = data[i] & 0x7F
        if b == ESC:
            if i + 1 >= len(data):
                break  # a dangling escape carries no character
            nxt = data[i + 1] & 0x7F
            out.append(_DEC_EXT.get(nxt, GSM_BASIC[nxt] if nxt != ESC else " "))
            i += 2
            continue
        out.append(GSM_BASIC[b])
        i += 1
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit septets into octets as on the air interface (after ``fill_bits`` zero bits)."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Inverse of :func:`pack_septets` for ``count`` septets."""
    value = int.from_bytes(data, "little") >> fill_bits
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


def encode_ucs2(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    if len(data) % 2:
        data = data[:-1]  # a torn final octet cannot be a character
    return data.decode("utf-16-be", "replace")


# --- segmentation ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Segment:
    """One part as submitted: ``payload`` is the short_message body after the UDH."""

    udh: bytes
    payload: bytes
    data_coding: int
    text: str

    @property
    def short_message(self) -> bytes:
        return self.udh + self.payload

    @property
    def esm_class(self) -> int:
        return 0x40 if self.udh else 0x00

    @property
    def tp_ud_octets(self) -> int:
        """Octets this part occupies in the TP-UD on the air (GSM packed, with fill bits)."""
        if self.data_coding != DC_GSM:
            return len(self.udh) + len(self.payload)
        udh_bits = len(self.udh) * 8
        fill = (7 - udh_bits % 7) % 7
        return (udh_bits + fill + 7 * len(self.payload) + 7) // 8


@dataclass(frozen=True, slots=True)
class Plan:
    """How a text goes out: coding, the text of each part, and the part count."""

    data_coding: int
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)

    @property
    def encoding(self) -> str:
        return "GSM-7" if self.data_coding == DC_GSM else "UCS-2"


def _units(ch: str, gsm: bool) -> int:
    if gsm:
        return 1 if ch in _ENC_BASIC else 2
    return 2 if ord(ch) > 0xFFFF else 1


def plan(text: str) -> Plan:
    """Choose the coding and cut ``text`` into parts at character boundaries.

    A Python ``str`` is a sequence of code points, so a character never splits: an
    escape pair (2 septets) or an astral character (a UTF-16 surrogate pair) moves whole
    to the next part when it does not fit.
    """
    gsm = is_gsm(text)
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    dc = DC_GSM if gsm else DC_UCS2
    if (gsm and _EXT_SET.isdisjoint(text)) or (not gsm and (not text or max(text) <= "\uffff")):
        # fast path: one unit per character, cut by slicing
        if len(text) <= single:
            return Plan(dc, (text,))
        return Plan(dc, tuple(text[i : i + part] for i in range(0, len(text), part)))
    total = sum(_units(ch, gsm) for ch in text)
    if total <= single:
        return Plan(DC_GSM if gsm else DC_UCS2, (text,))
    parts: list[str] = []
    start = 0
    used = 0
    for i, ch in enumerate(text):
        u = _units(ch, gsm)
        if used + u > part:
            parts.append(text[start:i])
            start, used = i, 0
        used += u
    parts.append(text[start:])
    return Plan(DC_GSM if gsm else DC_UCS2, tuple(parts))


def count_segments(text: str) -> int:
    """Exact number of SMS parts ``text`` needs."""
    return plan(text).count


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """UDH with the 8-bit-reference concatenation IE (IEI 0x00)."""
    return bytes((0x05, 0x00, 0x03, ref & 0xFF, total, seq))


def segment(text: str, ref: int) -> list[Segment]:
    """The submit_sm bodies for ``text``; ``ref`` identifies the parts of one message."""
    p = plan(text)
    if p.count > MAX_PARTS:
        raise EncodingError(f"text needs {p.count} parts; at most {MAX_PARTS} can be concatenated")
    enc = encode_gsm if p.data_coding == DC_GSM else encode_ucs2
    if p.count == 1:
        return [Segment(b"", enc(p.parts[0]), p.data_coding, p.parts[0])]
    return [Segment(concat_udh(ref, p.count, i), enc(t), p.data_coding, t) for i, t in enumerate(p.parts, 1)]


# --- inbound -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Concat:
    ref: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[Concat | None, bytes]:
    """Strip a UDH (esm_class 0x40); return its concatenation IE, if any, and the body."""
    if not short_message:
        raise EncodingError("UDHI set on an empty message")
    udhl = short_message[0]
    if 1 + udhl > len(short_message):
        raise EncodingError("UDH longer than the message")
    header, body = short_message[1 : 1 + udhl], short_message[1 + udhl :]
    concat: Concat | None = None
    i = 0
    while i + 2 <= len(header):
        iei, iel = header[i], header[i + 1]
        data = header[i + 2 : i + 2 + iel]
        if len(data) != iel:
            raise EncodingError("truncated UDH information element")
        if iei == 0x00 and iel == 3:
            concat = Concat(data[0], data[1], data[2])
        elif iei == 0x08 and iel == 4:
            concat = Concat(int.from_bytes(data[:2], "big"), data[2], data[3])
        i += 2 + iel
    if concat and not (1 <= concat.seq <= concat.total):
        raise EncodingError("concatenation part number out of range")
    return concat, body


def decode_body(body: bytes, data_coding: int) -> str:
    """Text of an inbound body in its SMPP data coding (GSM 03.38 DCS groups included)."""
    dc = data_coding & 0xFF
    if dc == DC_GSM:
        return decode_gsm(body)
    if dc == DC_UCS2:
        return decode_ucs2(body)
    if dc in (0x01, DC_LATIN1):  # IA5 / Latin-1
        return body.decode("latin-1")
    if dc & 0xC0 == 0x00 and dc >= 0x10:  # general coding group: alphabet in bits 3-2
        alphabet = (dc >> 2) & 0x03
    elif dc & 0xF0 == 0xF0:  # data coding / message class group
        alphabet = (dc >> 2) & 0x01
    else:
        alphabet = 1
    if alphabet == 0:
        return decode_gsm(body)
    if alphabet == 2:
        return decode_ucs2(body)
    raise EncodingError(f"data_coding 0x{dc:02x} is not a text message")


class Reassembler:
    """Collects concatenated parts per (sender, reference) until the message is whole.

    Parts are joined as bytes before decoding, so a sender that split a surrogate or
    escape pair still reassembles correctly. Bounded in entries and age.
    """

    def __init__(self, max_pending: int = 10_000, ttl_seconds: float = 600.0) -> None:
        self._pending: OrderedDict[tuple[str, int, int], tuple[float, int, dict[int, bytes]]] = OrderedDict()
        self.max_pending = max_pending
        self.ttl = ttl_seconds

    def add(self, sender: str, concat: Concat, body: bytes, data_coding: int, now: float | None = None) -> str | None:
        """Add one part; returns the whole text once the last part arrives."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        key = (sender, concat.ref, concat.total)
        _, dc, parts = self._pending.get(key, (now, data_coding, {}))
        parts[concat.seq] = body  # a repeated part replaces itself
        if len(parts) == concat.total:
            self._pending.pop(key, None)
            return decode_body(b"".join(parts[i] for i in range(1, concat.total + 1)), dc)
        self._pending[key] = (now, dc, parts)
        self._pending.move_to_end(key)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        return None

    def _expire(self, now: float) -> None:
        while self._pending:
            key, (started, _, _) = next(iter(self._pending.items()))
            if now - started <= self.ttl:
                break
            self._pending.pop(key)

    def __len__(self) -> int:
        return len(self._pending)


def reassemble(segments: list[Segment]) -> str:
    """Text of our own segments (the inverse of :func:`segment`, for checks and tests)."""
    r = Reassembler()
    out: str | None = None
    for s in segments:
        if not s.udh:
            return decode_body(s.payload, s.data_coding)
        concat, body = split_udh(s.short_message)
        if concat is None:
            raise EncodingError("part without a concatenation header")
        out = r.add("self", concat, body, s.data_coding)
    if out is None:
        raise EncodingError("incomplete message")
    return out
