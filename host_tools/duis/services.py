"""The services this hub answers, and which requests are for a device at all.

Services this hub answers (the CHF's DUIS services, with their GBCS use cases; the DCC Boxed
templates name each by its use case):
    6.28 SetCHFSubGHzConfiguration   DBCH04      6.31 ReadCHFSubGHzChannel        DBCH01
    6.29 RequestCHFSubGHzChannelScan DBCH05      6.32 ReadCHFSubGHzChannelLog     DBCH02
    6.30 ReadCHFSubGHzConfiguration  DBCH03      11.2 ReadFirmwareVersion         CS08
    11.3 ActivateFirmware            CS06 (immediate, future dated, or cancel: ExecutionDateTime
                                     3000-12-31T00:00:00Z, as the DCC Boxed CS06 cancellation
                                     template sends it)
and one non-device service the DCC answers itself: 5.1 CreateSchedule (host_tools.duis.dsp).

Modelling decisions (the seeds and the schema leave these open; host_tools.duis.checks applies them):
- Endpoint (E13). This front stands for the DCC's device path to one hub: it takes Service
  Requests for device services. A non-device request - a Service Reference Variant that the
  schema allows only with Command Variant 8 ("DCC Only"), or a Service Reference all of whose
  variants are such - or a request whose body is missing or outside the DUIS namespace is "not
  valid for the URL" (E13). The non-device path (host_tools.duis.front.serve_non_device) takes
  CreateSchedule and refuses device requests with E13 in turn.
- Command Variants (E12). The schema annotates every Service Reference Variant with the command
  variants it takes: 6.28-6.32 and 11.2 "CV = 1, 2, 3", 11.3 "CV = 4, 5, 6, 7", 5.1 "CV = 8".
  This front takes:
    6.28-6.32, 11.2  CV 1 only (send to the device). CV 2 and 3 ask the DCC to return a Command
               for Local Delivery, which this front cannot produce.
    11.3       CV 4 only: the Service Request form of a Critical command, as in the DCC Boxed CS06
               templates. This front has no Signed Pre-Command step (GBCS signing is out of
               scope), so it acts on the CV 4 request as though transform, signing and sending
               had happened; CV 5-7 (sr:SignedPreCommand bodies) are refused with E12.
  Any other variant for these services is E12. Variants of other services are not judged: those
  requests fail E19 or E11 whatever their command variant.
- Device type (E11). Only the services above are served: any other Service Reference is E11,
  including CHF services this hub does not implement (8.x install and return): E11 is the nearest
  code DUIS has for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from host_tools.duis.errors import DuisError


@dataclass(frozen=True)
class Service:
    srv: str  # Service Reference Variant (equal to the Service Reference for these seven)
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
        Service("6.32", "ReadCHFSubGHzChannelLog", "DBCH02", "Read CHF Sub GHz Channel Log", frozenset({1})),
        Service("11.2", "ReadFirmwareVersion", "CS08", "Read Firmware Version", frozenset({1})),
        Service("11.3", "ActivateFirmware", "CS06", "Activate Firmware", frozenset({4})),
    )
}
# the Service Reference Variant of each hub service's body element
BODY_TO_SRV = {s.body: s.srv for s in HUB_SERVICES.values()}

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
