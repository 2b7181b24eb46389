"""Safe parsing of WeChat's XML: no DTDs, no entities, no external fetches, bounded size.

The policy is defusedxml's (``forbid_dtd``, ``forbid_entities``, ``forbid_external``),
applied directly on an expat parser: defusedxml's ElementTree parser is built on the
pure-Python ``XMLParser`` and costs more than the rest of a callback. The tests check
this parser against ``defusedxml.ElementTree`` on arbitrary input.
"""

from __future__ import annotations

from xml.parsers import expat

MAX_XML_BYTES = 64 * 1024
MAX_DEPTH = 4


class XmlError(ValueError):
    """The body is not a WeChat XML message (malformed, DTD/entities, wrong root)."""


class XmlTooLarge(XmlError):
    """The body is larger than :data:`MAX_XML_BYTES`."""


class _Forbidden(Exception):
    pass


def _forbid(*_args: object) -> None:
    raise _Forbidden("DTDs and entities are not allowed")


def parse_xml(body: bytes) -> dict[str, str]:
    """Flatten ``<xml><Tag>text</Tag>…</xml>`` into ``{"Tag": "text"}``.

    Nested elements (``ScanCodeInfo`` and the like) are reached as ``Parent.Child``;
    the first occurrence of a repeated tag wins.
    """
    if len(body) > MAX_XML_BYTES:
        raise XmlTooLarge(f"body larger than {MAX_XML_BYTES} bytes")
    if not body.strip():
        raise XmlError("empty body")
    out: dict[str, str] = {}
    path: list[str] = []
    text: list[str] = []
    has_children: list[bool] = []
    root: list[str] = []

    def start(name: str, _attrs: object) -> None:
        if not path:
            if root:
                raise _Forbidden("more than one root element")
            root.append(name)
        elif has_children:
            has_children[-1] = True
        if len(path) > MAX_DEPTH:
            raise _Forbidden("nested too deeply")
        path.append(name)
        has_children.append(False)
        text.clear()

    def end(name: str) -> None:
        nested = has_children.pop()
        if len(path) > 1 and not nested:
            key = ".".join(path[1:])
            if key not in out:
                out[key] = "".join(text)
        path.pop()
        text.clear()

    def chars(data: str) -> None:
        text.append(data)

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, _Forbidden, ValueError, UnicodeError) as exc:
        raise XmlError(f"malformed XML: {exc}") from None
    if root != ["xml"]:
        raise XmlError("root element must be <xml>")
    return out
