"""The CHF Sub GHz Configuration and the operating channel as DUIS XML, and back: the 15 data
items of sr:SubGHzConfiguration (a 6.28 request, an 8F2A alert) and OperatingSubGHzChannel (an
8F26 alert), in the sr namespace or another one given."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from agent import subghz
from agent.channels import PLAN
from host_tools.duis.errors import DuisParseError, DuisRenderError
from host_tools.duis.xml import SR_NS, children, q, split_tag, sub

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


def fill_config(parent: ET.Element, mapping: Mapping[str, Any], ns: str) -> ET.Element:
    """`parent` with the 15 items of the configuration appended in schema order, in namespace `ns`."""
    cfg = canonical_config(mapping)
    for name, _page in subghz.CHANNEL_ITEMS:
        item = sub(parent, ns, name)
        for ch in cfg[name]:
            sub(item, ns, "Channel{}".format(ch))
    for name in _PARAM_PLACES:
        sub(parent, ns, name, str(cfg[name]))
    return parent


def render_config_xml(
    mapping: Mapping[str, Any], tag: str = "SubGHzConfigurationChanged", ns: str = SR_NS
) -> ET.Element:
    """An element of type sr:SubGHzConfiguration (all 15 items in schema order) named `tag`:
    sr:SetCHFSubGHzConfiguration in a 6.28 request, sr:SubGHzConfigurationChanged in an 8F2A
    alert."""
    return fill_config(ET.Element(q(ns, tag)), mapping, ns)


def config_from_xml(element: ET.Element) -> dict[str, Any]:
    """The mapping of a Sub GHz Configuration element (any namespace), as agent.subghz.validate
    takes it: channel lists of ints from the ChannelN names, decimals as their text, whole
    numbers as int (text that is not a whole number is kept as text for validate to refuse).
    Items absent from the XML are absent from the mapping."""
    out: dict[str, Any] = {}
    for child in children(element):
        _ns, name = split_tag(child.tag)
        if name in _CHANNEL_RANGES:
            chans = []
            for c in children(child):
                m = _CHANNEL_NAME.fullmatch(split_tag(c.tag)[1])
                if not m:
                    raise DuisParseError("{}: unexpected element {}".format(name, split_tag(c.tag)[1]))
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
            raise DuisParseError("{}: unexpected element {}".format(split_tag(element.tag)[1], name))
    return out


def channel_element(parent: ET.Element, ns: str, data: Mapping[str, Any]) -> ET.Element:
    """OperatingSubGHzChannel for {"page": 28-31, "channel": n}: lower band (pages 28-30) as
    OperatingLowerBandSubGHzChannel/ChannelN with N the lower-band channel 0-61, page 31 as
    OperatingUpperBandSubGHzChannel/ChannelN with N 0-26."""
    page, channel = data.get("page"), data.get("channel")
    if page not in PLAN or isinstance(channel, bool) or not isinstance(channel, int):
        raise DuisRenderError("an operating channel needs page 28-31 and an int channel, got {!r}".format(dict(data)))
    first, last = PLAN[page][0], PLAN[page][1]
    if not first <= channel <= last:
        raise DuisRenderError("channel {} is not on page {} (channels {}-{})".format(channel, page, first, last))
    op = sub(parent, ns, "OperatingSubGHzChannel")
    band = sub(op, ns, "OperatingUpperBandSubGHzChannel" if page == 31 else "OperatingLowerBandSubGHzChannel")
    sub(band, ns, "Channel{}".format(channel))
    return op
