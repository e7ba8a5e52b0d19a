"""What the transport itself reads or adds in a DUIS document: the ResponseID each asynchronous
document carries (the receiver's key for dropping a second copy), the header items a receiver
reports, and the Service Response's ResponseID made from the request's parties."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from host_tools.duis.xml import RA_NS, SR_NS, parse_xml, q, serialise, short_name


def with_response_id(xml: bytes, response_id: str) -> bytes:
    """The sr:Response `xml` with sr:ResponseID set (after sr:RequestID, as the schema orders the
    header). A document without an sr:Header (the MMC ra:GBCSResponse) is returned unchanged: its
    receiver keys it by its bytes (see key_of)."""
    root = parse_xml(xml)
    header = root.find(q(SR_NS, "Header"))
    if root.tag != q(SR_NS, "Response") or header is None:
        return xml
    old = header.find(q(SR_NS, "ResponseID"))
    if old is not None:
        header.remove(old)
    el = ET.Element(q(SR_NS, "ResponseID"))
    el.text = response_id
    at = 1 if header.find(q(SR_NS, "RequestID")) is not None else 0
    header.insert(at, el)
    return serialise(root)


@dataclass
class Facts:
    """What a receiver reports of a document."""

    root: str  # sr:Response, ra:GBCSResponse ...
    response_id: str | None
    request_id: str | None
    response_code: str | None
    alert_code: str | None
    service_reference_variant: str | None

    @property
    def key(self) -> str | None:
        return self.response_id


def _text(root: ET.Element, *path: tuple[str, str]) -> str | None:
    el = root.find("/".join(q(ns, name) for ns, name in path))
    return el.text.strip() if el is not None and el.text else None


def facts(xml: bytes) -> Facts:
    """The header items of a response or alert (DuisParseError if it is not well-formed)."""
    root = parse_xml(xml)
    if root.tag == q(RA_NS, "GBCSResponse"):
        h = (RA_NS, "Header")
        orig, target, counter = (
            _text(root, h, (RA_NS, n)) for n in ("BusinessOriginatorID", "BusinessTargetID", "OriginatorCounter")
        )
        return Facts(
            short_name(root.tag),
            None,
            "{}:{}:{}".format(target, orig, counter),
            None,
            None,
            _text(root, h, (RA_NS, "ServiceReferenceVariant")),
        )
    h = (SR_NS, "Header")
    return Facts(
        short_name(root.tag),
        _text(root, h, (SR_NS, "ResponseID")),
        _text(root, h, (SR_NS, "RequestID")),
        _text(root, h, (SR_NS, "ResponseCode")),
        _text(root, (SR_NS, "Body"), (SR_NS, "DCCAlertMessage"), (SR_NS, "DCCAlertCode")),
        _text(root, (SR_NS, "Body"), (SR_NS, "ResponseMessage"), (SR_NS, "ServiceReferenceVariant")),
    )


def key_of(xml: bytes, found: Facts) -> str:
    """The key a receiver drops a second copy by: the ResponseID, else the document's SHA-256 (a
    retry sends the same bytes)."""
    return found.response_id or "sha256:" + hashlib.sha256(xml).hexdigest()
