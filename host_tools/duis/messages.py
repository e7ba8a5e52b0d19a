"""The hub's DUIS 5.4 XML front: read, check and build Service Requests, render Service Responses
and DCC Alerts (N54, N64). CPython only.

The schema is not part of the project. Functions that need it take a schema folder as a
parameter, else $DBCH_DUIS_SCHEMA_DIR, else the DUIS 5.1 schema of the npm package
@smartdcc/duis-sign-wrap, fetched once into the user's cache (`host_tools.duis.assets`; with npm,
and a note on stderr). A folder holds "DUIS Schema V5.4.xsd" - a DCC User's own copy, preferred -
or "DUIS Schema V5.1.xsd", with the files it imports ("MMC Schema V5.x.xsd",
xmldsig-core-schema.xsd). DUIS 5.1 declares every element this front reads and writes, and
schemaVersion is an xs:decimal in both, so the "5.4" documents written here validate against
either; `schema_version()` says which one a folder holds. Loading a schema with xmlschema (pure
Python) takes about 0.6-0.8 s on a desktop machine, so a loaded schema is kept per folder for the
life of the process (`schema_load_time()` reports the measured figure).

Services this hub answers (the CHF's DUIS services, with their GBCS use cases):
    6.28 SetCHFSubGHzConfiguration   DBCH04      6.30 ReadCHFSubGHzConfiguration  DBCH03
    6.29 RequestCHFSubGHzChannelScan DBCH05      6.31 ReadCHFSubGHzChannel        DBCH01
    11.3 ActivateFirmware            CS06

Modelling decisions (the seeds and the schema leave these open):
- Endpoint (E13). This front stands for the DCC's device path to one hub: it takes Service
  Requests for device services. A non-device request - a Service Reference Variant that the
  schema allows only with Command Variant 8 ("DCC Only"), or a Service Reference all of whose
  variants are such - or a request whose body is missing or outside the DUIS namespace is "not
  valid for the URL" (E13).
- Command Variants (E12). The schema annotates every Service Reference Variant with the command
  variants it takes: 6.28-6.31 "CV = 1, 2, 3", 11.3 "CV = 4, 5, 6, 7". This front takes:
    6.28-6.31  CV 1 only (send to the device). CV 2 and 3 ask the DCC to return a Command for
               Local Delivery, which this front cannot produce.
    11.3       CV 4 only: the Service Request form of a Critical command, as in the DCC Boxed CS06
               templates. This front has no Signed Pre-Command step (GBCS signing is out of
               scope), so it acts on the CV 4 request as though transform, signing and sending
               had happened; CV 5-7 (sr:SignedPreCommand bodies) are refused with E12.
  Any other variant for these services is E12. Variants of other services are not judged: those
  requests fail E19 or E11 whatever their command variant.
- Device type (E11). Only the five services above are served: any other Service Reference is
  E11, including CHF services this hub does not implement (6.32 channel log, 11.2 firmware
  version, 8.x install and return): E11 is the nearest code DUIS has for them.
- Precedence of check_request (first failing check wins): E48, E13, E12, E49, E55, E19, E11.
  The header must agree with itself before anything can be read from it (E48); then the kind of
  request for this endpoint (E13); then the command variant for the service (E12); then the body
  against the header (E49). A duplicate Request ID (E55) is judged only for a well-formed request.
  The device checks come last, in the DCC's order: a device must exist (E19) before its device
  type can be compared with the service (E11).
- Responses. The schema's sr:Response carries device data only as an opaque base64 GBCSPayload,
  and this project has no GBCS encoder. So acknowledgements, errors and data-less successes are
  an sr:Response whose ResponseMessage holds just ServiceReference and ServiceReferenceVariant
  (the simplest schema-valid form), while the successful 6.30 and 6.31 responses, which carry
  data, are rendered in the form the schema set defines for readable device responses: the MMC
  ra:GBCSResponse (namespace ResponseAndAlert, imported by the DUIS schema) with
  ReadCHFSubGHzConfigurationRsp or ReadCHFSubGHzChannelRsp - what DCC Users get from a GBCS
  payload after parsing it.
- Alerts. sr:Response/sr:Header needs only ResponseCode and ResponseDateTime (RequestID and
  ResponseID are optional): a DCC Alert carries those two, plus ResponseID when given.
- Signatures are noted, never verified: parse_request reports "absent", "placeholder" (the DCC
  Boxed templates' DigestValue/SignatureValue "ZGVmYXVsdA==", base64 of "default") or
  "present", with a warning in each case. Built requests are unsigned (ds:Signature is optional).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import codes, dcc_tables, subghz
from agent.channels import PLAN
from agent.dcc_tables import RESPONSE_CODES
from agent.eui import format_eui, parse_eui
from host_tools.errors import DbchError

SR_NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
RA_NS = "http://www.dccinterface.co.uk/ResponseAndAlert"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
for _prefix, _uri in (("sr", SR_NS), ("ra", RA_NS), ("ds", DS_NS)):
    ET.register_namespace(_prefix, _uri)

SCHEMA_FILE = "DUIS Schema V5.4.xsd"
SCHEMA_VERSION = "5.4"  # the schemaVersion of the documents written here
# The schema files a folder may hold, preferred first, with their DUIS versions.
SCHEMA_FILES = {SCHEMA_FILE: SCHEMA_VERSION, "DUIS Schema V5.1.xsd": "5.1"}
ENV_SCHEMA_DIR = "DBCH_DUIS_SCHEMA_DIR"
PLACEHOLDER_SIGNATURE = "ZGVmYXVsdA=="  # base64 "default", the DCC Boxed templates' placeholder

SIGNATURE_ABSENT = "absent"
SIGNATURE_PLACEHOLDER = "placeholder"
SIGNATURE_PRESENT = "present"

# render_response body kinds
ACK = "ack"
CONFIG = "config"
CHANNEL = "channel"
BODY_KINDS = (ACK, CONFIG, CHANNEL)


class DuisError(DbchError, ValueError):
    """Base of this module's errors; the message says what is wrong and what to do."""


class DuisConfigError(DuisError):
    """No usable DUIS schema folder."""


class DuisParseError(DuisError):
    """Not a readable DUIS request (malformed XML, wrong root, missing or bad header item)."""


class DuisValidationError(DuisError):
    """The XML does not validate against the DUIS schema; `errors` lists the schema errors."""

    def __init__(self, errors: list[str], version: str = SCHEMA_VERSION):
        shown = "; ".join(errors[:5]) + ("; ..." if len(errors) > 5 else "")
        super().__init__(
            "not valid against the DUIS {} schema ({} error{}): {}".format(
                version, len(errors), "" if len(errors) == 1 else "s", shown
            )
        )
        self.errors = errors
        self.version = version


class DuisRenderError(DuisError):
    """Data that cannot be rendered as DUIS XML."""


# -- the services of this hub ------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    srv: str  # Service Reference Variant (equal to the Service Reference for these five)
    body: str  # the sr:Body element that carries the request
    use_case: str  # GBCS use case
    title: str
    command_variants: frozenset[int]  # the variants this front takes (see the module notes)

    @property
    def sr(self) -> str:
        return self.srv

    @property
    def default_command_variant(self) -> int:
        return min(self.command_variants)


HUB_SERVICES: dict[str, Service] = {
    s.srv: s
    for s in (
        Service("6.28", "SetCHFSubGHzConfiguration", "DBCH04", "Set CHF Sub GHz Configuration", frozenset({1})),
        Service("6.29", "RequestCHFSubGHzChannelScan", "DBCH05", "Request CHF Sub GHz Channel Scan", frozenset({1})),
        Service("6.30", "ReadCHFSubGHzConfiguration", "DBCH03", "Read CHF Sub GHz Configuration", frozenset({1})),
        Service("6.31", "ReadCHFSubGHzChannel", "DBCH01", "Read CHF Sub GHz Channel", frozenset({1})),
        Service("11.3", "ActivateFirmware", "CS06", "Activate Firmware", frozenset({4})),
    )
}
_BODY_TO_SRV = {s.body: s.srv for s in HUB_SERVICES.values()}

# Non-device requests: the Service Reference Variants the DUIS 5.4 schema annotates "CV = 8"
# (DCC Only), and the Service References all of whose variants are so annotated.
NON_DEVICE_SRVS = frozenset(
    ("5.1", "5.2", "5.3", "8.2", "8.3", "8.4", "8.6", "8.13", "8.14.1", "8.14.2", "8.14.3", "8.14.4", "11.1", "11.4")
    + ("12.1", "12.2")
)
NON_DEVICE_SRS = frozenset(
    ("5.1", "5.2", "5.3", "8.2", "8.3", "8.4", "8.6", "8.13", "8.14", "11.1", "11.4", "12.1", "12.2")
)


def service(name: str) -> Service:
    """A hub service by Service Reference Variant ("6.28"), body element or GBCS use case."""
    for s in HUB_SERVICES.values():
        if name in (s.srv, s.body, s.use_case):
            return s
    raise DuisError(
        "unknown service {!r}: this hub takes {}".format(
            name, ", ".join("{} ({}, {})".format(s.srv, s.body, s.use_case) for s in HUB_SERVICES.values())
        )
    )


# -- schema ------------------------------------------------------------------------------------

_SCHEMAS: dict[Path, Any] = {}
_LOAD_SECONDS: dict[Path, float] = {}


def _schema_file(where: Path) -> str | None:
    return next((name for name in SCHEMA_FILES if (where / name).is_file()), None)


def schema_dir(explicit: str | os.PathLike[str] | None = None, *, fetch: bool = True) -> Path:
    """The DUIS schema folder: `explicit`, else $DBCH_DUIS_SCHEMA_DIR, else the copy fetched from
    the npm package (host_tools.duis.assets), fetched now with a note on stderr if it is not in
    the cache and `fetch` is true. The folder must hold "DUIS Schema V5.4.xsd" or "DUIS Schema
    V5.1.xsd"; DuisConfigError, saying what to do, if it does not or none can be had."""
    how = (
        "give the folder holding the DCC's {!r} (and the files it imports) with --schema DIR "
        "or the environment variable {}".format(SCHEMA_FILE, ENV_SCHEMA_DIR)
    )
    if explicit is not None and str(explicit) != "":
        where, source = Path(explicit), "the given schema folder"
    elif os.environ.get(ENV_SCHEMA_DIR):
        where, source = Path(os.environ[ENV_SCHEMA_DIR]), "${}".format(ENV_SCHEMA_DIR)
    else:
        from host_tools.duis import assets as duis_assets

        cached = duis_assets.cached_schema_dir()
        if cached is not None:
            return cached.resolve()
        if not fetch:
            raise DuisConfigError("no DUIS schema configured or fetched (dbch schema fetch): " + how)
        print(
            "dbch: no DUIS schema given (--schema DIR or ${}): using the DUIS {} schema of the npm package {}".format(
                ENV_SCHEMA_DIR, duis_assets.SCHEMA_VERSION, duis_assets.SCHEMA_PACKAGE.spec
            ),
            file=sys.stderr,
            flush=True,
        )
        try:
            return duis_assets.fetch_schema().resolve()
        except duis_assets.DuisAssetsError as e:
            raise DuisConfigError("no DUIS schema: {}".format(e)) from e
    if not where.is_dir():
        raise DuisConfigError("{} {} is not a folder: {}".format(source, where, how))
    if _schema_file(where) is None:
        raise DuisConfigError(
            "{} {} has no {}: {}".format(source, where, " or ".join(repr(name) for name in SCHEMA_FILES), how)
        )
    return where.resolve()


def schema_version(directory: str | os.PathLike[str] | None = None) -> str:
    """The DUIS version of the schema a folder holds (resolved as schema_dir does): "5.4" or "5.1"."""
    return SCHEMA_FILES[_schema_file(schema_dir(directory))]


def load_schema(directory: str | os.PathLike[str] | None = None) -> Any:
    """The folder's DUIS schema (an xmlschema.XMLSchema; 5.4 if the folder holds it, else 5.1),
    loaded once per folder and then cached."""
    where = schema_dir(directory)
    schema = _SCHEMAS.get(where)
    if schema is None:
        import xmlschema  # slow to import as well: only when a schema is needed

        started = time.perf_counter()
        try:
            # allow="local": the schema's imports are files beside it; nothing is fetched remotely.
            schema = xmlschema.XMLSchema(str(where / _schema_file(where)), allow="local")
        except (xmlschema.XMLSchemaException, OSError) as e:
            raise DuisConfigError("cannot load the DUIS schema from {}: {}".format(where, e)) from e
        _LOAD_SECONDS[where] = time.perf_counter() - started
        _SCHEMAS[where] = schema
    return schema


def schema_load_time(directory: str | os.PathLike[str] | None = None) -> float | None:
    """Seconds the schema of that folder took to load, or None if it is not loaded."""
    return _LOAD_SECONDS.get(schema_dir(directory))


def _short_path(path: str | None) -> str:
    if not path:
        return "/"
    return path.replace("{%s}" % SR_NS, "sr:").replace("{%s}" % RA_NS, "ra:").replace("{%s}" % DS_NS, "ds:")


def _format_schema_error(err: Any) -> str:
    reason = getattr(err, "reason", None) or str(err).splitlines()[0]
    message = (getattr(err, "message", "") or "").strip().rstrip(":")
    text = "{}: {}".format(_short_path(getattr(err, "path", None)), reason)
    if message and message not in reason and len(message) < 200:
        text += " ({})".format(message)
    return text


def validate(xml: bytes | str, directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Schema errors of a DUIS document (request, response, alert or MMC response); [] if valid.
    XML that is not well-formed gives one error saying so."""
    try:
        root = _parse_xml(xml)
    except DuisParseError as e:
        return [str(e)]
    schema = load_schema(directory)
    return [_format_schema_error(err) for err in schema.iter_errors(root)]


# -- XML helpers -------------------------------------------------------------------------------


def _parse_xml(xml: bytes | str) -> ET.Element:
    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # DUIS messages have no DTD; refusing one keeps entity expansion out of the parser.
        raise DuisParseError("not a DUIS message: a DOCTYPE or ENTITY declaration is not allowed")
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise DuisParseError("not well-formed XML: {}".format(e)) from e


def _q(ns: str, name: str) -> str:
    return "{%s}%s" % (ns, name)


def _split(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str):  # comments, processing instructions
        return "", ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _children(el: ET.Element) -> list[ET.Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _sub(parent: ET.Element, ns: str, name: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, _q(ns, name), attrib)
    if text is not None:
        el.text = text
    return el


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def _norm_eui(value: Any, what: str) -> str:
    try:
        return format_eui(parse_eui(value))
    except ValueError as e:
        raise DuisRenderError("{}: {}".format(what, e)) from e


_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def _utc(when: dt.datetime | str | None) -> dt.datetime:
    if when is None:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if isinstance(when, str):
        m = _DATETIME.fullmatch(when.strip())
        if not m:
            raise DuisError("{!r} is not an xs:dateTime (YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm])".format(when))
        y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
        frac = m.group(7) or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        tz = dt.timezone.utc
        if m.group(8) and m.group(8) != "Z":
            sign = -1 if m.group(8)[0] == "-" else 1
            tz = dt.timezone(sign * dt.timedelta(hours=int(m.group(8)[1:3]), minutes=int(m.group(8)[4:6])))
        try:
            when = dt.datetime(y, mo, d, h, mi, s, micro, tzinfo=tz)
        except ValueError as e:
            raise DuisError("{!r} is not a valid date and time: {}".format(m.group(0), e)) from e
    if not isinstance(when, dt.datetime):
        raise DuisError("expected a datetime or an ISO 8601 string, got {!r}".format(when))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # DUIS times are UTC
    return when.astimezone(dt.timezone.utc)


def utc_text(when: dt.datetime | str | None = None) -> str:
    """An xs:dateTime in UTC ('2030-01-15T09:00:00Z'); fractions of a second only when non-zero."""
    t = _utc(when)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += ".{:06d}".format(t.microsecond).rstrip("0")
    return text + "Z"


# -- Sub GHz Configuration <-> XML -------------------------------------------------------------

_CHANNEL_RANGES = {name: PLAN[page][:2] for name, page in subghz.CHANNEL_ITEMS}
_PARAM_PLACES = {item[0]: item[1] for item in subghz.PARAMETER_ITEMS}
_CHANNEL_NAME = re.compile(r"Channel([0-9]+)")
_INT = re.compile(r"[+-]?[0-9]+")


def _canonical_channels(name: str, value: Any) -> list[int]:
    if value is None:
        value = ()
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise DuisRenderError("{}: expected a list of channel numbers, got {!r}".format(name, value))
    first, last = _CHANNEL_RANGES[name]
    out = set()
    for ch in value:
        if isinstance(ch, bool) or not isinstance(ch, int):
            raise DuisRenderError("{}: {!r} is not a channel number".format(name, ch))
        if not first <= ch <= last:
            raise DuisRenderError("{}: there is no Channel{} element (channels {}-{})".format(name, ch, first, last))
        out.add(ch)
    return sorted(out)


def canonical_config(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration mapping in the form parse_request gives: channel lists sorted, decimals as
    DUIS text with their places ('1.3', '60.00'), whole numbers as int. Ranges are not checked
    (agent.subghz.validate and the schema do that); DuisRenderError for anything unrenderable."""
    if not isinstance(mapping, Mapping):
        raise DuisRenderError("a Sub GHz Configuration is a mapping of DUIS data items, got {!r}".format(mapping))
    unknown = [k for k in mapping if k not in subghz.ITEM_NAMES]
    if unknown:
        raise DuisRenderError("not data items of the Sub GHz Configuration: {}".format(", ".join(map(str, unknown))))
    missing = [k for k in subghz.ITEM_NAMES if k not in mapping]
    if missing:
        raise DuisRenderError("the Sub GHz Configuration lacks {}".format(", ".join(missing)))
    out: dict[str, Any] = {}
    for name, _page in subghz.CHANNEL_ITEMS:
        out[name] = _canonical_channels(name, mapping[name])
    for name, places in _PARAM_PLACES.items():
        try:
            scaled = subghz.parse_decimal(mapping[name], places, name)
        except subghz.ConfigError as e:
            raise DuisRenderError(str(e)) from e
        out[name] = subghz.format_decimal(scaled, places) if places else scaled
    return out


def _fill_config(parent: ET.Element, mapping: Mapping[str, Any], ns: str) -> ET.Element:
    cfg = canonical_config(mapping)
    for name, _page in subghz.CHANNEL_ITEMS:
        item = _sub(parent, ns, name)
        for ch in cfg[name]:
            _sub(item, ns, "Channel{}".format(ch))
    for name in _PARAM_PLACES:
        _sub(parent, ns, name, str(cfg[name]))
    return parent


def render_config_xml(
    mapping: Mapping[str, Any], tag: str = "SubGHzConfigurationChanged", ns: str = SR_NS
) -> ET.Element:
    """An element of type sr:SubGHzConfiguration (all 15 items in schema order) named `tag`:
    sr:SetCHFSubGHzConfiguration in a 6.28 request, sr:SubGHzConfigurationChanged in an 8F2A
    alert. With ns=RA_NS the same children fill an MMC ReadCHFSubGHzConfigurationRsp."""
    return _fill_config(ET.Element(_q(ns, tag)), mapping, ns)


def config_from_xml(element: ET.Element) -> dict[str, Any]:
    """The mapping of a Sub GHz Configuration element (any namespace), as agent.subghz.validate
    takes it: channel lists of ints from the ChannelN names, decimals as their text, whole
    numbers as int (text that is not a whole number is kept as text for validate to refuse).
    Items absent from the XML are absent from the mapping."""
    out: dict[str, Any] = {}
    for child in _children(element):
        _ns, name = _split(child.tag)
        if name in _CHANNEL_RANGES:
            chans = []
            for c in _children(child):
                m = _CHANNEL_NAME.fullmatch(_split(c.tag)[1])
                if not m:
                    raise DuisParseError("{}: unexpected element {}".format(name, _split(c.tag)[1]))
                ch = int(m.group(1))
                if ch not in chans:
                    chans.append(ch)
            out[name] = sorted(chans)
        elif name in _PARAM_PLACES:
            text = (child.text or "").strip()
            if _PARAM_PLACES[name] == 0 and _INT.fullmatch(text):
                out[name] = int(text)
            else:
                out[name] = text
        else:
            raise DuisParseError("{}: unexpected element {}".format(_split(element.tag)[1], name))
    return out


# -- requests ----------------------------------------------------------------------------------


@dataclass
class DuisRequest:
    """A DUIS Service Request as read by parse_request."""

    request_id: str  # "ORIGINATOR-EUI:TARGET-EUI:counter", EUIs upper-case
    originator: str
    target: str
    counter: int
    service_reference: str
    service_reference_variant: str
    command_variant: int
    body: str  # local name of the sr:Body child; "{ns}name" outside the sr namespace; "" if none
    args: dict[str, Any]
    signature: str  # SIGNATURE_ABSENT, SIGNATURE_PLACEHOLDER or SIGNATURE_PRESENT
    warnings: list[str] = field(default_factory=list)
    schema_version: str = ""

    @property
    def service(self) -> Service | None:
        """The hub service named by the Service Reference Variant, if it is one of this hub's."""
        return HUB_SERVICES.get(self.service_reference_variant)


_REQUEST_ID = re.compile(r"((?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}):((?:[0-9A-Fa-f]{2}-){7}[0-9A-Fa-f]{2}):([0-9]+)")
_UINT64 = 2**64 - 1


def split_request_id(request_id: str) -> tuple[str, str, int]:
    """'ORIG:TARGET:counter' -> (originator EUI, target EUI, counter); DuisParseError if not one."""
    m = _REQUEST_ID.fullmatch(request_id.strip())
    if not m or int(m.group(3)) > _UINT64:
        raise DuisParseError(
            "RequestID {!r} is not originatorEUI:targetEUI:counter (EUIs as XX-XX-XX-XX-XX-XX-XX-XX, "
            "counter 0..2^64-1)".format(request_id)
        )
    return m.group(1).upper(), m.group(2).upper(), int(m.group(3))


def make_request_id(originator_eui: Any, target_eui: Any, counter: int) -> str:
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= _UINT64:
        raise DuisRenderError("counter must be an int in 0..2^64-1, got {!r}".format(counter))
    return "{}:{}:{}".format(_norm_eui(originator_eui, "originator"), _norm_eui(target_eui, "target"), counter)


def _header_text(header: ET.Element, name: str, required: bool = True) -> str | None:
    el = header.find(_q(SR_NS, name))
    if el is None or not (el.text or "").strip():
        if required:
            raise DuisParseError("the request header has no sr:{}".format(name))
        return None
    return el.text.strip()


def _signature_state(root: ET.Element) -> str:
    sig = root.find(_q(DS_NS, "Signature"))
    if sig is None:
        return SIGNATURE_ABSENT
    values = [
        (el.text or "").strip()
        for el in sig.iter()
        if el.tag in (_q(DS_NS, "DigestValue"), _q(DS_NS, "SignatureValue"))
    ]
    if values and all(v == PLACEHOLDER_SIGNATURE for v in values):
        return SIGNATURE_PLACEHOLDER
    return SIGNATURE_PRESENT


_SIGNATURE_WARNINGS = {
    SIGNATURE_ABSENT: "unsigned request: no ds:Signature (signatures are not verified by this front)",
    SIGNATURE_PLACEHOLDER: (
        "placeholder signature: DigestValue/SignatureValue are the DCC Boxed templates' 'ZGVmYXVsdA==' "
        "(base64 'default'), not a real signature"
    ),
    SIGNATURE_PRESENT: "signature present but not verified (signature verification is out of scope)",
}


def _firmware_args(el: ET.Element, warnings: list[str]) -> dict[str, Any]:
    hash_el = el.find(_q(SR_NS, "FirmwareHash"))
    text = (hash_el.text or "").strip() if hash_el is not None else ""
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise DuisParseError("ActivateFirmware: FirmwareHash must be 32 bytes as 64 hex digits, got {!r}".format(text))
    when_el = el.find(_q(SR_NS, "ExecutionDateTime"))
    execution = None
    if when_el is not None:
        raw = (when_el.text or "").strip()
        try:
            execution = utc_text(raw)
        except DuisError as e:
            raise DuisParseError("ActivateFirmware: ExecutionDateTime {}".format(e)) from e
        if not raw.endswith("Z") and not re.search(r"[+-]\d\d:\d\d$", raw):
            warnings.append("ExecutionDateTime {!r} has no time zone: read as UTC".format(raw))
    return {"hash": digest, "execution": execution}


def parse_request(xml: bytes | str) -> DuisRequest:
    """Read a DUIS sr:Request (without checking it against the schema: see validate and
    read_request). DuisParseError when the XML is not well-formed, the root is not sr:Request, a
    header item is missing or malformed, or an ActivateFirmware hash or time cannot be read.

    args by body: SetCHFSubGHzConfiguration -> the configuration mapping (config_from_xml);
    ActivateFirmware -> {"hash": 32 bytes, "execution": UTC ISO text or None}; others -> {}.
    """
    root = _parse_xml(xml)
    if root.tag != _q(SR_NS, "Request"):
        ns, name = _split(root.tag)
        raise DuisParseError(
            "not a DUIS request: the root element is {}, expected sr:Request in namespace {}".format(
                _short_path(root.tag) if ns else name, SR_NS
            )
        )
    header = root.find(_q(SR_NS, "Header"))
    if header is None:
        raise DuisParseError("the request has no sr:Header")
    request_id = _header_text(header, "RequestID")
    originator, target, counter = split_request_id(request_id)
    cv_text = _header_text(header, "CommandVariant")
    if not cv_text.isdigit():
        raise DuisParseError("CommandVariant {!r} is not a number".format(cv_text))
    sr = _header_text(header, "ServiceReference")
    srv = _header_text(header, "ServiceReferenceVariant")
    body_el = root.find(_q(SR_NS, "Body"))
    items = _children(body_el) if body_el is not None else []
    body, args = "", {}
    warnings: list[str] = []
    if items:
        ns, name = _split(items[0].tag)
        body = name if ns == SR_NS else items[0].tag
        if body == "SetCHFSubGHzConfiguration":
            args = config_from_xml(items[0])
        elif body == "ActivateFirmware":
            args = _firmware_args(items[0], warnings)
    signature = _signature_state(root)
    warnings.insert(0, _SIGNATURE_WARNINGS[signature])
    return DuisRequest(
        request_id="{}:{}:{}".format(originator, target, counter),
        originator=originator,
        target=target,
        counter=counter,
        service_reference=sr,
        service_reference_variant=srv,
        command_variant=int(cv_text),
        body=body,
        args=args,
        signature=signature,
        warnings=warnings,
        schema_version=root.get("schemaVersion", ""),
    )


def read_request(xml: bytes | str, directory: str | os.PathLike[str] | None = None) -> DuisRequest:
    """parse_request after checking the XML against the schema; DuisValidationError (with the
    schema errors) if it does not validate, DuisParseError if it is not well-formed."""
    _parse_xml(xml)  # a malformed document is a parse error, not a schema error
    errors = validate(xml, directory)
    if errors:
        raise DuisValidationError(errors, schema_version(directory))
    return parse_request(xml)


def _reject(code: str, why: str) -> tuple[str, str]:
    return code, "{} {}: {}".format(code, dcc_tables.response_name(code), why)


def check_request(req: DuisRequest, *, target_eui: Any, seen_request_ids: set[str]) -> tuple[str | None, str]:
    """The DCC-side checks that apply to this hub (seed Table 1): (None, message) when the request
    is accepted - its Request ID is then added to seen_request_ids - else (code, message) with
    the first failing code in the order E48, E13, E12, E49, E55, E19, E11 (see the module notes)."""
    sr, srv = req.service_reference, req.service_reference_variant
    if not (srv == sr or srv.startswith(sr + ".")):
        return _reject("E48", "ServiceReferenceVariant {} is not a variant of ServiceReference {}".format(srv, sr))
    if srv in NON_DEVICE_SRVS or sr in NON_DEVICE_SRS:
        return _reject(
            "E13", "{} is a non-device request (DCC Only, Command Variant 8); this is a device endpoint".format(srv)
        )
    if not req.body:
        return _reject("E13", "the request has no body: a device Service Request is expected")
    if req.body.startswith("{"):
        return _reject("E13", "the body {} is not a DUIS Service Request element".format(req.body))
    svc = req.service
    if svc is not None and req.command_variant not in svc.command_variants:
        return _reject(
            "E12",
            "Command Variant {} is not taken for {} {} (this front takes {})".format(
                req.command_variant, svc.srv, svc.body, " or ".join(str(v) for v in sorted(svc.command_variants))
            ),
        )
    if svc is not None and req.body != svc.body:
        return _reject("E49", "ServiceReferenceVariant {} needs a {} body, not {}".format(srv, svc.body, req.body))
    if svc is None and req.body in _BODY_TO_SRV:
        return _reject(
            "E49",
            "a {} body belongs to ServiceReferenceVariant {}, not {}".format(req.body, _BODY_TO_SRV[req.body], srv),
        )
    if req.request_id in seen_request_ids:
        return _reject("E55", "RequestID {} has been received before".format(req.request_id))
    hub = _norm_eui(target_eui, "target_eui")
    if req.target != hub:
        return _reject("E19", "target device {} does not exist here (this hub is {})".format(req.target, hub))
    if svc is None:
        return _reject(
            "E11",
            "Service Reference {} is not for a Communications Hub Function (this hub takes {})".format(
                sr, ", ".join(HUB_SERVICES)
            ),
        )
    seen_request_ids.add(req.request_id)
    return None, "accepted: {} {} for {}".format(svc.srv, svc.body, req.target)


def request_xml(
    service_name: str,
    target_eui: Any,
    originator_eui: Any,
    counter: int,
    args: Mapping[str, Any] | None = None,
    *,
    command_variant: int | None = None,
) -> bytes:
    """Build an unsigned DUIS sr:Request for one of this hub's services ("6.28", a body name or
    a GBCS use case). args: for 6.28 the configuration mapping; for 11.3 {"hash": 32 bytes or 64
    hex digits, "execution": datetime, ISO text or None}; nothing for 6.29, 6.30 and 6.31.
    command_variant defaults to the one this front takes (1, or 4 for 11.3)."""
    svc = service(service_name)
    cv = svc.default_command_variant if command_variant is None else command_variant
    root = ET.Element(_q(SR_NS, "Request"), {"schemaVersion": SCHEMA_VERSION})
    header = _sub(root, SR_NS, "Header")
    _sub(header, SR_NS, "RequestID", make_request_id(originator_eui, target_eui, counter))
    _sub(header, SR_NS, "CommandVariant", str(cv))
    _sub(header, SR_NS, "ServiceReference", svc.sr)
    _sub(header, SR_NS, "ServiceReferenceVariant", svc.srv)
    body = _sub(root, SR_NS, "Body")
    if svc.srv == "6.28":
        if args is None:
            raise DuisRenderError("6.28 needs the Sub GHz Configuration mapping as args")
        body.append(render_config_xml(args, tag=svc.body))
    elif svc.srv == "11.3":
        args = dict(args or {})
        digest = args.get("hash")
        if isinstance(digest, str):
            try:
                digest = bytes.fromhex(digest)
            except ValueError:
                digest = None
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
            raise DuisRenderError("11.3 needs args['hash']: the 32-byte firmware hash (bytes or 64 hex digits)")
        el = _sub(body, SR_NS, svc.body)
        if args.get("execution") is not None:
            try:
                _sub(el, SR_NS, "ExecutionDateTime", utc_text(args["execution"]))
            except DuisError as e:
                raise DuisRenderError("11.3 execution: {}".format(e)) from e
        _sub(el, SR_NS, "FirmwareHash", bytes(digest).hex().upper())
    else:
        if args:
            raise DuisRenderError("{} {} takes no arguments, got {!r}".format(svc.srv, svc.body, dict(args)))
        _sub(body, SR_NS, svc.body)
    return _serialise(root)


# -- responses ---------------------------------------------------------------------------------


def _check_rc(rc: str) -> str:
    if rc not in RESPONSE_CODES:
        raise DuisRenderError("unknown response code {!r}".format(rc))
    return rc


def _channel_element(parent: ET.Element, ns: str, data: Mapping[str, Any]) -> ET.Element:
    """OperatingSubGHzChannel for {"page": 28-31, "channel": n}: lower band (pages 28-30) as
    OperatingLowerBandSubGHzChannel/ChannelN with N the lower-band channel 0-61, page 31 as
    OperatingUpperBandSubGHzChannel/ChannelN with N 0-26."""
    page, channel = data.get("page"), data.get("channel")
    if page not in PLAN or isinstance(channel, bool) or not isinstance(channel, int):
        raise DuisRenderError("an operating channel needs page 28-31 and an int channel, got {!r}".format(dict(data)))
    first, last = PLAN[page][0], PLAN[page][1]
    if not first <= channel <= last:
        raise DuisRenderError("channel {} is not on page {} (channels {}-{})".format(channel, page, first, last))
    op = _sub(parent, ns, "OperatingSubGHzChannel")
    band = _sub(op, ns, "OperatingUpperBandSubGHzChannel" if page == 31 else "OperatingLowerBandSubGHzChannel")
    _sub(band, ns, "Channel{}".format(channel))
    return op


def _mmc_response(req: DuisRequest, rsp: str, stamp: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element(_q(RA_NS, "GBCSResponse"), {"schemaVersion": SCHEMA_VERSION})
    header = _sub(root, RA_NS, "Header")
    # GBCS responses run from the device to the requester, under the request's counter.
    _sub(header, RA_NS, "BusinessOriginatorID", req.target)
    _sub(header, RA_NS, "BusinessTargetID", req.originator)
    _sub(header, RA_NS, "OriginatorCounter", str(req.counter))
    _sub(header, RA_NS, "ServiceReference", req.service_reference)
    _sub(header, RA_NS, "ServiceReferenceVariant", req.service_reference_variant)
    _sub(header, RA_NS, "Timestamp", stamp)
    message = _sub(_sub(root, RA_NS, "Body"), RA_NS, "ResponseMessage")
    element = _sub(_sub(message, RA_NS, "SMETSData"), RA_NS, rsp, MessageSuccess="true")
    return root, element


def render_response(
    req: DuisRequest,
    rc: str,
    body_kind: str | None = None,
    data: Any = None,
    *,
    when: dt.datetime | str | None = None,
) -> bytes:
    """The response to a request.

    body_kind ACK: an sr:Response (RequestID, ResponseCode, ResponseDateTime; a ResponseMessage
    with ServiceReference and ServiceReferenceVariant only) - for I99 acknowledgements, errors
    and successes without data (6.28, 6.29, 11.3).
    body_kind CONFIG (6.30, data = the configuration mapping) and CHANNEL (6.31, data =
    {"page", "channel"}, or None when the hub has no operating channel): an I0 response with its
    data, rendered as the MMC ra:GBCSResponse (see the module notes).
    body_kind None picks CONFIG or CHANNEL for an I0 6.30 or 6.31 response given data, else ACK.
    """
    _check_rc(rc)
    try:
        stamp = utc_text(when)
    except DuisError as e:
        raise DuisRenderError("when: {}".format(e)) from e
    srv = req.service_reference_variant
    if body_kind is None:
        body_kind = ACK
        if rc == codes.SUCCESS and data is not None:
            body_kind = {"6.30": CONFIG, "6.31": CHANNEL}.get(srv, ACK)
    if body_kind not in BODY_KINDS:
        raise DuisRenderError("body_kind must be one of {}, got {!r}".format(", ".join(BODY_KINDS), body_kind))
    if body_kind == ACK:
        root = ET.Element(_q(SR_NS, "Response"), {"schemaVersion": SCHEMA_VERSION})
        header = _sub(root, SR_NS, "Header")
        _sub(header, SR_NS, "RequestID", req.request_id)
        _sub(header, SR_NS, "ResponseCode", rc)
        _sub(header, SR_NS, "ResponseDateTime", stamp)
        message = _sub(_sub(root, SR_NS, "Body"), SR_NS, "ResponseMessage")
        _sub(message, SR_NS, "ServiceReference", req.service_reference)
        _sub(message, SR_NS, "ServiceReferenceVariant", srv)
        return _serialise(root)
    wanted = "6.30" if body_kind == CONFIG else "6.31"
    if srv != wanted:
        raise DuisRenderError("a {} response answers SRV {}, not {}".format(body_kind, wanted, srv))
    if rc != codes.SUCCESS:
        raise DuisRenderError("only an I0 response carries data; render {} as {!r}".format(rc, ACK))
    if body_kind == CONFIG:
        if data is None:
            raise DuisRenderError("a config response needs the configuration mapping")
        root, element = _mmc_response(req, "ReadCHFSubGHzConfigurationRsp", stamp)
        _fill_config(element, data, RA_NS)
    else:
        root, element = _mmc_response(req, "ReadCHFSubGHzChannelRsp", stamp)
        if data is not None:
            _channel_element(element, RA_NS, data)
    return _serialise(root)


# -- DCC alerts --------------------------------------------------------------------------------

# sr:CRAFlag: which kind of message the hub discarded. The agent may give the schema's text or a
# bool; a bool reads True -> "Response", False -> "Command" (the hub mostly relays commands to
# devices; the agent should carry the schema's text).
CRA_FLAGS = ("Command", "Response", "Alert")


def _cra(value: Any) -> str:
    if isinstance(value, bool):
        return "Response" if value else "Command"
    if value in CRA_FLAGS:
        return value
    raise DuisRenderError("CRAFlag must be one of {} (or a bool), got {!r}".format(", ".join(CRA_FLAGS), value))


def _need(payload: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in payload:
            return payload[name]
    raise DuisRenderError("the payload needs {}, got {!r}".format(" or ".join(names), dict(payload)))


def _n54_payload(parent: ET.Element, code: int, kind: str | None, payload: Any) -> None:
    name = "0x{:04X}".format(code)
    if kind is None:
        if payload not in (None, {}):
            raise DuisRenderError("{} carries no payload, got {!r}".format(name, payload))
        return
    if payload is None and kind == "eui":
        return  # 8F20 with no device to name (only the hub's own traffic): the payload is optional
    if payload is None:
        raise DuisRenderError("{} needs a payload ({})".format(name, kind))
    if not isinstance(payload, Mapping):
        raise DuisRenderError("{} payload must be a mapping, got {!r}".format(name, payload))
    if kind == "eui":
        eui = _need(payload, "DeviceIDToSuspend", "eui")
        if eui is None:
            return  # no device to name: the payload is optional in sr:DualBandCHAlert
        el = _sub(parent, SR_NS, "LimitedDutyCycleActionTaken")
        _sub(el, SR_NS, "DeviceIDToSuspend", _norm_eui(eui, "DeviceIDToSuspend"))
    elif kind == "channel":
        el = _sub(parent, SR_NS, "SubGHzChannelChanged")
        _channel_element(el, SR_NS, payload)
        _sub(el, SR_NS, "ScanTrigger", str(_need(payload, "trigger", "ScanTrigger")))
    elif kind == "scan_outcome":
        el = _sub(parent, SR_NS, "SubGHzChannelScanRequestAssessmentOutcome")
        _sub(el, SR_NS, "StatusCode", str(_need(payload, "status", "StatusCode")))
        _sub(el, SR_NS, "ScanTrigger", str(_need(payload, "trigger", "ScanTrigger")))
    elif kind == "config":
        parent.append(render_config_xml(payload, tag="SubGHzConfigurationChanged"))
    elif kind == "request":
        el = _sub(parent, SR_NS, "MessageDiscardedDueToDutyCycleManagement")
        request_id = str(_need(payload, "request_id", "RequestID"))
        split_request_id(request_id)  # DuisParseError -> rendered below as a render error
        _sub(el, SR_NS, "RequestID", request_id)
        _sub(el, SR_NS, "CRAFlag", _cra(_need(payload, "cra", "CRAFlag")))
    elif kind == "eui_type":
        el = _sub(parent, SR_NS, "NoMoreSubGHzDeviceCapacity")
        _sub(el, SR_NS, "DeviceID", _norm_eui(_need(payload, "DeviceID", "eui"), "DeviceID"))
        if payload.get("DeviceType") is not None:
            _sub(el, SR_NS, "DeviceType", str(payload["DeviceType"]))
    else:  # pragma: no cover - dcc_tables.GBCS_ALERTS names only the kinds above
        raise DuisRenderError("{}: unknown payload kind {!r}".format(name, kind))


def _alert_code(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value), 16)
    except ValueError as e:
        raise DuisRenderError("DeviceAlertCode {!r} is not a hex alert code like '8F2A'".format(value)) from e


def render_alert(
    event_kind: str,
    data: Mapping[str, Any],
    *,
    response_id: str | None = None,
    when: dt.datetime | str | None = None,
) -> bytes:
    """A DCC Alert: sr:Response / sr:Header (ResponseID when given, ResponseCode,
    ResponseDateTime) / sr:Body / sr:DCCAlertMessage (DCCAlertCode, DCCAlert).

    "N54" (sr:DualBandCHAlert), data as agent.alerts.n54 makes it: CHFDeviceID, DeviceAlertCode
    ("8F26"), rc (the one Table 42 allows: I0 or E59) and payload - 8F20 {"DeviceIDToSuspend"},
    8F26 {"page", "channel", "trigger"}, 8F28 {"status", "trigger"}, 8F2A the configuration
    mapping, 8F2C {"request_id", "cra"}, 8F2D {"DeviceID", "DeviceType"?}, others none.
    "N64" (sr:CommsHubFirmwareActivation): {"DeviceID", "FirmwareVersion"}, response code I0.
    DuisRenderError for anything that would not make a schema-valid alert.
    """
    if not isinstance(data, Mapping):
        raise DuisRenderError("alert data must be a mapping, got {!r}".format(data))
    try:
        return _render_alert(event_kind, data, response_id, when)
    except DuisRenderError:
        raise
    except ValueError as e:  # a bad EUI, RequestID or time
        raise DuisRenderError("{}: {}".format(event_kind, e)) from e


def _render_alert(event_kind: str, data: Mapping[str, Any], response_id: str | None, when: Any) -> bytes:
    if event_kind == "N54":
        code = _alert_code(_need(data, "DeviceAlertCode"))
        entry = dcc_tables.GBCS_ALERTS.get(code)
        if entry is None:
            raise DuisRenderError("0x{:04X} is not a Dual Band CH alert (0x8F20-0x8F2D)".format(code))
        rc = data.get("rc", entry[1])
        if rc != entry[1]:
            raise DuisRenderError("N54 for 0x{:04X} carries {} (Table 42), not {}".format(code, entry[1], rc))
    elif event_kind == "N64":
        rc = data.get("rc", codes.SUCCESS)
        if rc not in dcc_tables.allowed_response("N64"):
            raise DuisRenderError("N64 carries I0, not {}".format(rc))
    else:
        raise DuisRenderError("can render DCC alerts N54 and N64, not {!r}".format(event_kind))
    root = ET.Element(_q(SR_NS, "Response"), {"schemaVersion": SCHEMA_VERSION})
    header = _sub(root, SR_NS, "Header")
    if response_id is not None:
        split_request_id(response_id)  # same shape as a RequestID
        _sub(header, SR_NS, "ResponseID", response_id)
    _sub(header, SR_NS, "ResponseCode", rc)
    _sub(header, SR_NS, "ResponseDateTime", utc_text(when))
    message = _sub(_sub(root, SR_NS, "Body"), SR_NS, "DCCAlertMessage")
    _sub(message, SR_NS, "DCCAlertCode", event_kind)
    alert = _sub(message, SR_NS, "DCCAlert")
    if event_kind == "N54":
        el = _sub(alert, SR_NS, "DualBandCHAlert")
        _sub(el, SR_NS, "CHFDeviceID", _norm_eui(_need(data, "CHFDeviceID"), "CHFDeviceID"))
        _sub(el, SR_NS, "DeviceAlertCode", dcc_tables.gbcs_alert_hex(code))
        _n54_payload(el, code, entry[2], data.get("payload"))
    else:
        el = _sub(alert, SR_NS, "CommsHubFirmwareActivation")
        _sub(el, SR_NS, "DeviceID", _norm_eui(_need(data, "DeviceID"), "DeviceID"))
        version = _need(data, "FirmwareVersion")
        if not isinstance(version, str) or not 1 <= len(version) <= 8:
            raise DuisRenderError("FirmwareVersion is 1 to 8 characters, got {!r}".format(version))
        _sub(el, SR_NS, "FirmwareVersion", version)
    return _serialise(root)
