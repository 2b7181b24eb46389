"""Safe parsing of WeChat's XML: no DTDs, no entities, no external fetches, bounded size."""
from __future__ import annotations

from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_XML_BYTES = 64 * 1024


class XmlError(ValueError):
    """The body is not a WeChat XML message (malformed, DTD/entities, wrong root)."""


class XmlTooLarge(XmlError):
    """The body is larger than :data:`MAX_XML_BYTES`."""


def parse_xml(body: bytes) -> dict[str, str]:
    """Flatten ``<xml><Tag>text</Tag>…</xml>`` into ``{"Tag": "text"}``.

    Nested elements (``ScanCodeInfo`` and the like) are reached as ``Parent.Child``;
    the first occurrence of a repeated tag wins.
    """
    if len(body) > MAX_XML_BYTES:
        raise XmlTooLarge(f"body larger than {MAX_XML_BYTES} bytes")
    if not body.strip():
        raise XmlError("empty body")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError) as exc:
        raise XmlError(f"malformed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise XmlError("root element must be <xml>")
    out: dict[str, str] = {}
    _flatten(root, "", out, depth=0)
    return out


def _flatten(node, prefix: str, out: dict[str, str], depth: int) -> None:  # type: ignore[no-untyped-def]
    for child in node:
        if not isinstance(child.tag, str):
            continue  # comments / processing instructions
        key = f"{prefix}{child.tag}"
        if len(child) and depth < 3:
            _flatten(child, f"{key}.", out, depth + 1)
        elif key not in out:
            out[key] = child.text or ""
