# The CHF Sub GHz Configuration (DUIS SRV 6.28 SetCHFSubGHzConfiguration, GBCS DBCH04): the 15
# data items of sr:SubGHzConfiguration, validated to the DUIS 5.4 ranges and answered with
# response codes. How this project reads E062801/E062802/E062803 is written once, in
# agent/dcc_tables.py beside the codes.
#
# Input is a plain mapping keyed by the DUIS element names. Channel items are iterables of channel
# numbers (the ChannelN elements present). Decimal items are strings ("1.5"), ints, or floats that
# are read through their shortest repr; they are kept as scaled ints (tenths or hundredths) so no
# float ever decides a range check.
from agent.channels import LOWER_BAND_PAGES, PLAN, encode_mask

OK = "I0"
E_CHANNELS = "E062801"
E_TWO_PER_PAGE = "E062802"
E_PARAMETER = "E062803"

# (DUIS element name, page) for the four channel items, in schema order.
CHANNEL_ITEMS = (
    ("LowerBandSubGHzChannels0To26", 28),
    ("LowerBandSubGHzChannels27To34", 29),
    ("LowerBandSubGHzChannels35To61", 30),
    ("UpperBandSubGHzChannels0To26", 31),
)

# (DUIS element name, decimal places, minimum, maximum, minimum exclusive, maximum exclusive),
# bounds in the scaled unit (value * 10**places). Source: DUIS 5.4 sr:SubGHzConfiguration.
_U16 = 65535
PARAMETER_ITEMS = (
    ("NormalLimitedDutyCycleThreshold", 1, 5, 20, False, False),
    ("LimitedCriticalDutyCycleThreshold", 1, 15, 25, True, True),
    ("MaximumSubGHzChannelChangesPerWeek", 0, 1, 7, False, False),
    ("GSMECurfew", 0, 1, _U16, True, False),
    ("ChannelQuieterThreshold", 0, 1, 255, False, False),
    ("ChannelNoisierThreshold", 0, 0, 20, False, False),
    ("NonGSMEPoorCommsPercentageThreshold", 2, 100, 10000, False, False),
    ("NonGSMEPoorCommsMeasurementPeriods", 0, 50, 150, False, False),
    ("LocalCHNoiseMeasurementPeriod", 0, 60, _U16, True, False),
    ("LocalCHFailurePercentage", 2, 100, 10000, False, False),
    ("LocalCHRetryPercentage", 2, 100, 10000, False, False),
)

ITEM_NAMES = tuple(i[0] for i in CHANNEL_ITEMS) + tuple(i[0] for i in PARAMETER_ITEMS)

# Regions where the upper band (page 31) should stay empty (seed: "not validated by the DCC").
REGIONS_WITHOUT_UPPER_BAND = ("Central", "South")


class ConfigError(ValueError):
    """A data item that cannot be used: `field` names it, `code` is the response code."""

    def __init__(self, field, code, message):
        super().__init__("{}: {}".format(field, message))
        self.field = field
        self.code = code
        self.detail = message


def _ascii_digits(text):
    # str.isdigit() accepts other scripts' digits and superscripts on CPython: DUIS does not.
    # Bytes, since MicroPython interns each character a str yields, for good.
    for c in text.encode():
        if not 0x30 <= c <= 0x39:
            return False
    return True


def parse_decimal(value, places, field):
    """A decimal data item as an int scaled by 10**places; ConfigError if it is not one."""
    if isinstance(value, bool):
        raise ConfigError(field, E_PARAMETER, "{!r} is not a number".format(value))
    if isinstance(value, int):
        return value * 10**places
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        raise ConfigError(field, E_PARAMETER, "{!r} is not a number".format(value))
    text = value.strip()
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    whole, _, frac = text.partition(".")
    if not (whole or frac) or not _ascii_digits(whole) or not _ascii_digits(frac):
        raise ConfigError(field, E_PARAMETER, "{!r} is not a decimal number".format(value))
    frac = frac.rstrip("0")
    if len(frac) > places:
        raise ConfigError(
            field, E_PARAMETER, "{} has more than {} decimal place{}".format(value, places, "" if places == 1 else "s")
        )
    frac = frac + "0" * (places - len(frac))
    return sign * int((whole or "0") + frac)


def format_decimal(scaled, places):
    """Scaled int -> DUIS decimal text with exactly `places` decimal places ('1.5', '55.00')."""
    if places == 0:
        return str(scaled)
    sign = "-" if scaled < 0 else ""
    scaled = abs(scaled)
    div = 10**places
    return "{}{}.{}".format(sign, scaled // div, str(scaled % div + div)[1:])


def _bound_text(bound, places, exclusive, lower):
    word = ("more than" if lower else "less than") if exclusive else ("at least" if lower else "at most")
    return "{} {}".format(word, format_decimal(bound, places))


class SubGhzConfig:
    """A validated configuration: channel sets per page and the scaled parameters."""

    def __init__(self, channels, params):
        self.channels = channels  # {page: tuple of channel numbers, ascending}
        self.params = params  # {DUIS name: scaled int}

    def mask(self, page):
        return encode_mask(page, self.channels[page])

    def masks(self):
        return [self.mask(page) for page in (28, 29, 30, 31)]

    def usable_channels(self, pages=None):
        """[(page, channel)] the hub may operate on, in plan order."""
        out = []
        for page in (28, 29, 30, 31):
            if pages is None or page in pages:
                for ch in self.channels[page]:
                    out.append((page, ch))
        return out

    # Duty-cycle thresholds in permille of the hour (tenths of a percent).
    @property
    def normal_limited_permille(self):
        return self.params["NormalLimitedDutyCycleThreshold"]

    @property
    def limited_critical_permille(self):
        return self.params["LimitedCriticalDutyCycleThreshold"]

    def get(self, name):
        return self.params[name]

    def to_mapping(self):
        """The configuration keyed by DUIS names, decimals as DUIS text: valid input to validate()."""
        out = {}
        for name, page in CHANNEL_ITEMS:
            out[name] = list(self.channels[page])
        for name, places, _lo, _hi, _lx, _hx in PARAMETER_ITEMS:
            v = self.params[name]
            out[name] = format_decimal(v, places) if places else v
        return out

    def __eq__(self, other):
        return isinstance(other, SubGhzConfig) and self.channels == other.channels and self.params == other.params


class Result:
    """The outcome of validate(): a response code, the errors and warnings, and the config."""

    def __init__(self, code, errors, warnings, config):
        self.code = code
        self.errors = errors  # [(field, message)], the first decides the code
        self.warnings = warnings  # [(field, message)]
        self.config = config  # SubGhzConfig when code is I0, else None

    @property
    def ok(self):
        return self.code == OK

    def as_dict(self):
        return {
            "rc": self.code,
            "errors": [{"field": f, "message": m} for f, m in self.errors],
            "warnings": [{"field": f, "message": m} for f, m in self.warnings],
        }


def _channel_set(name, page, value):
    if value is None:
        value = ()
    if not isinstance(value, (list, tuple, set)):
        raise ConfigError(name, E_CHANNELS, "expected a list of channel numbers, got {!r}".format(value))
    first, last = PLAN[page][0], PLAN[page][1]
    chans = []
    for ch in value:
        if isinstance(ch, bool) or not isinstance(ch, int):
            raise ConfigError(name, E_CHANNELS, "{!r} is not a channel number".format(ch))
        if not first <= ch <= last:
            raise ConfigError(
                name, E_CHANNELS, "channel {} is not on page {} (channels {}-{})".format(ch, page, first, last)
            )
        if ch not in chans:
            chans.append(ch)
    return tuple(sorted(chans))


def validate(mapping, region=None):
    """Validate a Sub GHz Configuration mapping; returns a Result (never raises on bad input).

    Codes, first error wins: E062801 for unusable channel sets, E062802 for a used lower-band page
    with fewer than two channels, E062803 for any other item missing, malformed or out of range.
    `region` ("North", "Central", "South") only adds a warning for a configured upper band.
    """
    warnings = []
    if not isinstance(mapping, dict):
        return Result(E_PARAMETER, [("SubGHzConfiguration", "expected a mapping of data items")], [], None)
    chan_errors, two_errors, param_errors = [], [], []
    for key in mapping:
        if key not in ITEM_NAMES:
            param_errors.append((str(key), "not a data item of the Sub GHz Configuration"))
    channels = {}
    for name, page in CHANNEL_ITEMS:
        channels[page] = ()
        if name not in mapping:
            chan_errors.append((name, "missing (an empty list means no channel on this page)"))
            continue
        try:
            channels[page] = _channel_set(name, page, mapping[name])
        except ConfigError as e:
            chan_errors.append((name, e.detail))
    if not chan_errors and not any(channels[p] for p in LOWER_BAND_PAGES):
        chan_errors.append(
            ("LowerBandSubGHzChannels0To26", "no lower-band channel: at least one lower-band page must be used")
        )
    for name, page in CHANNEL_ITEMS:
        if page in LOWER_BAND_PAGES and len(channels[page]) == 1:
            two_errors.append((name, "page {} is used with one channel; a used page needs at least two".format(page)))
    params = {}
    for name, places, lo, hi, lo_x, hi_x in PARAMETER_ITEMS:
        if name not in mapping:
            param_errors.append((name, "missing"))
            continue
        try:
            v = parse_decimal(mapping[name], places, name)
        except ConfigError as e:
            param_errors.append((name, e.detail))
            continue
        if (v <= lo if lo_x else v < lo) or (v >= hi if hi_x else v > hi):
            param_errors.append(
                (
                    name,
                    "{} is out of range: {} and {}".format(
                        format_decimal(v, places),
                        _bound_text(lo, places, lo_x, True),
                        _bound_text(hi, places, hi_x, False),
                    ),
                )
            )
            continue
        params[name] = v
    nl = params.get("NormalLimitedDutyCycleThreshold")
    lc = params.get("LimitedCriticalDutyCycleThreshold")
    if nl is not None and lc is not None and nl >= lc:
        # DUIS does not state it, but the thresholds only make sense ordered: limited before critical.
        param_errors.append(
            (
                "LimitedCriticalDutyCycleThreshold",
                "must be above NormalLimitedDutyCycleThreshold ({} is not above {})".format(
                    format_decimal(lc, 1), format_decimal(nl, 1)
                ),
            )
        )
    if channels.get(31) and region in REGIONS_WITHOUT_UPPER_BAND:
        warnings.append(
            (
                "UpperBandSubGHzChannels0To26",
                "should be empty in the {} region (accepted: the DCC does not validate it)".format(region),
            )
        )
    if chan_errors:
        return Result(E_CHANNELS, chan_errors + two_errors + param_errors, warnings, None)
    if two_errors:
        return Result(E_TWO_PER_PAGE, two_errors + param_errors, warnings, None)
    if param_errors:
        return Result(E_PARAMETER, param_errors, warnings, None)
    return Result(OK, [], warnings, SubGhzConfig(channels, params))
