"""The DUIS namespaces and the ElementTree helpers every DUIS document here is read and written
with: well-formed XML without a DTD in, indented UTF-8 with its declaration out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from agent.eui import format_eui, parse_eui
from host_tools.duis.errors import DuisParseError, DuisRenderError

SR_NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
RA_NS = "http://www.dccinterface.co.uk/ResponseAndAlert"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
for _prefix, _uri in (("sr", SR_NS), ("ra", RA_NS), ("ds", DS_NS)):
    ET.register_namespace(_prefix, _uri)

SCHEMA_VERSION = "5.4"  # the schemaVersion of the documents written here


def parse_xml(xml: bytes | str) -> ET.Element:
    """The root element of a document; DuisParseError if it is not well-formed or has a DTD."""
    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # DUIS messages have no DTD; refusing one keeps entity expansion out of the parser.
        raise DuisParseError("not a DUIS message: a DOCTYPE or ENTITY declaration is not allowed")
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise DuisParseError("not well-formed XML: {}".format(e)) from e


def q(ns: str, name: str) -> str:
    """The ElementTree name of `name` in namespace `ns`: "{ns}name"."""
    return "{%s}%s" % (ns, name)


def split_tag(tag: Any) -> tuple[str, str]:
    """(namespace, local name) of a tag; ("", "") for comments and processing instructions."""
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def short_name(path: str | None) -> str:
    """An element name or schema path with the DUIS namespaces as their prefixes (sr:, ra:, ds:)."""
    if not path:
        return "/"
    return path.replace("{%s}" % SR_NS, "sr:").replace("{%s}" % RA_NS, "ra:").replace("{%s}" % DS_NS, "ds:")


def children(el: ET.Element) -> list[ET.Element]:
    """The child elements (no comments or processing instructions)."""
    return [c for c in el if isinstance(c.tag, str)]


def document(ns: str, name: str) -> ET.Element:
    """The root element of a document written here, with its schemaVersion."""
    return ET.Element(q(ns, name), {"schemaVersion": SCHEMA_VERSION})


def sub(parent: ET.Element, ns: str, name: str, text: str | None = None, **attrib: str) -> ET.Element:
    """A new child of `parent`, with its text if given."""
    el = ET.SubElement(parent, q(ns, name), attrib)
    if text is not None:
        el.text = text
    return el


def serialise(root: ET.Element) -> bytes:
    """The document as indented UTF-8 with its XML declaration and a final newline."""
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def norm_eui(value: Any, what: str) -> str:
    """An EUI-64 as DUIS writes it (XX-XX-XX-XX-XX-XX-XX-XX); DuisRenderError naming `what`."""
    try:
        return format_eui(parse_eui(value))
    except ValueError as e:
        raise DuisRenderError("{}: {}".format(what, e)) from e
