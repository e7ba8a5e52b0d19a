"""The DCC Data Systems toward this hub: a DUIS request (bytes) in, the DUIS documents out.

    serve_device(client, xml)  a device Service Request (the send-command path): schema, the
                               DCC's checks (E11, E12, E13, E19, E48, E49, E55), then the
                               Acknowledgement (I99) and, from the board's answer, the Service
                               Response; or the error response alone
    serve_non_device(xml, schedules)  a non-device request (5.1 CreateSchedule): the result (I0
                               with its DSPScheduleID) or the error, at once; a device request
                               here is E13
    answer(client, xml, schema)  serve_device for `dbch duis`: the last document and its code

Each returns an Exchange: `sync` is what the DCC answers at once (an I99 Acknowledgement, an I0
result or an error response), `responses` the Service Responses that follow asynchronously,
oldest first. A transport (HTTPS, a file) sends them as it will; nothing here prints or waits.

E55 is a duplicate of a request still being processed (seed Table 1): an InFlight holds the
RequestIDs between their acceptance and their Service Response - a future dated 11.3's until its
ExecutionDateTime, or its cancellation - shared by every caller of one front (it has its own
lock); a RequestID used again after that is a new request.

The device's part of each answer - accepted or refused with which code, the values read - is the
board's (FORWARD: the agent operation and how its answer is rendered); the DCC's part (schema,
checks) is decided here before the board is asked.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import codes
from host_tools.duis import dsp
from host_tools.duis.checks import check_request
from host_tools.duis.config import canonical_config
from host_tools.duis.dsp import ScheduleStore
from host_tools.duis.errors import DuisConfigError, DuisError
from host_tools.duis.requests import DuisRequest, read_request
from host_tools.duis.responses import ACK, PAYLOAD, SCHEDULE_ID, render_response
from host_tools.duis.schema import schema_dir
from host_tools.duis.services import NON_DEVICE_SRS, NON_DEVICE_SRVS
from host_tools.duis.times import utc, utc_text
from host_tools.link.agent import checked

ACKNOWLEDGED = "I99"

# SRV -> the agent operation that carries it (its arguments: _agent_args)
FORWARD = {
    "6.28": "config.set",
    "6.29": "scan",
    "6.30": "config.get",
    "6.31": "channel",
    "6.32": "channel",
    "11.2": "fw.status",
    "11.3": "fw.activate",  # fw.cancel for the cancellation
}


class InFlight:
    """The RequestIDs being processed: from their acceptance to their Service Response, and a
    future dated 11.3's until its ExecutionDateTime (the DCC still awaits the activation), unless
    it is cancelled first (release)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._ids: dict[str, float | None] = {}  # RequestID -> held until (UTC seconds), None: running
        self._tags: dict[str, object] = {}  # RequestID -> what release() knows it by
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc).timestamp())
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = self._clock()
        for rid, until in list(self._ids.items()):
            if until is not None and until <= now:
                del self._ids[rid]
                self._tags.pop(rid, None)

    def __contains__(self, request_id: object) -> bool:
        with self._lock:
            self._expire()
            return request_id in self._ids

    def begin(self, request_id: str) -> bool:
        """Mark it in process; False if it already is (a duplicate: E55)."""
        with self._lock:
            self._expire()
            if request_id in self._ids:
                return False
            self._ids[request_id] = None
            return True

    def end(self, request_id: str, until: float | None = None, tag: object = None) -> None:
        """Its Service Response is out: no longer in process, or (until, UTC seconds) still until
        then, releasable by `tag`."""
        with self._lock:
            if until is not None and until > self._clock():
                self._ids[request_id] = until
                self._tags[request_id] = tag
            else:
                self._ids.pop(request_id, None)
                self._tags.pop(request_id, None)

    def release(self, tag: object) -> None:
        """Those held with this tag are no longer in process (a cancelled future dated request)."""
        with self._lock:
            for rid in [r for r, t in self._tags.items() if t == tag]:
                self._ids.pop(rid, None)
                del self._tags[rid]


@dataclass
class Exchange:
    """The documents of one request: `sync` (code `code`), then `responses`."""

    code: str
    sync: bytes
    responses: list[bytes] = field(default_factory=list)
    response_codes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request: DuisRequest | None = None

    @property
    def final(self) -> tuple[str, bytes]:
        """(code, document) of the last document: the Service Response, else `sync`."""
        if self.responses:
            return self.response_codes[-1], self.responses[-1]
        return self.code, self.sync


def read(xml: bytes, schema: str | os.PathLike[str] | None) -> DuisRequest:
    """The request, schema-checked; DuisConfigError without a schema, DuisError if not valid."""
    try:
        return read_request(xml, schema_dir(schema))
    except DuisConfigError:
        raise
    except DuisError as e:
        raise DuisError(f"not a valid DUIS 5.4 request: {e}") from e


def _agent_args(req: DuisRequest) -> tuple[str, dict[str, Any]]:
    srv, a = req.service_reference_variant, req.args
    if srv == "6.28":
        return "config.set", {"config": dict(a)}
    if srv == "6.32":
        return "channel", {"log": True}
    if srv == "11.3":
        if a.get("cancel"):
            return "fw.cancel", {"hash": a["hash"]}
        return "fw.activate", {"hash": a["hash"], "execution": a.get("execution")}
    return FORWARD[srv], {}


def _utc_seconds(text: str) -> int:
    return int(utc(text).timestamp())


def device_part(req: DuisRequest, rc: str, data: Any, warnings: list[str]) -> tuple[str, str, Any]:
    """(response code, body kind, payload) of the Service Response, from the board's answer to
    the operation _agent_args names."""
    srv = req.service_reference_variant
    if srv == "11.3" and rc == "E5" and isinstance(data, dict) and data.get("outcome"):
        # The image named is not held. The DUIS 5.4 schema's sr:ResponseCode lists no code for
        # 11.3 (E1101xx are 11.1's, E1104xx 11.4's): the outcome is the device's, GBCS's
        # activateImageResponseCode in the Activate Firmware Response (noImageHeld,
        # hashMismatch), which the DCC returns in an I0 Service Response's GBCSPayload.
        warnings.append("the hub holds no image with this FirmwareHash: {}".format(data["outcome"]))
        return codes.SUCCESS, PAYLOAD, {"activateImageResponseCode": data["outcome"]}
    if rc != codes.SUCCESS:
        return rc, ACK, None
    if srv == "6.30":
        if data is None:
            warnings.append("the hub holds no Sub GHz Configuration yet")
            return rc, PAYLOAD, {"SubGHzConfiguration": None}
        return rc, PAYLOAD, {"SubGHzConfiguration": canonical_config(data)}
    if srv == "6.31":
        ch = None if data is None else {"page": data["page"], "channel": data["channel"]}
        return rc, PAYLOAD, {"OperatingSubGHzChannel": ch}
    if srv == "6.32":
        start, end = _utc_seconds(req.args["start"]), _utc_seconds(req.args["end"])
        changes = [c for c in (data or {}).get("changes", ()) if isinstance(c, int) and start <= c <= end]
        ch = (data or {}).get("channel")
        return (
            rc,
            PAYLOAD,
            {
                "ReadLogPeriod": {"StartDateTime": req.args["start"], "EndDateTime": req.args["end"]},
                "SubGHzChannelChanges": [utc_text(dt.datetime.fromtimestamp(c, dt.timezone.utc)) for c in changes],
                "OperatingSubGHzChannel": None if ch is None else {"page": ch["page"], "channel": ch["channel"]},
            },
        )
    if srv == "11.2":
        return rc, PAYLOAD, {"FirmwareVersion": data.get("version"), "FirmwareHash": data.get("hash")}
    return rc, ACK, None


def serve_device(
    client,
    xml: bytes,
    *,
    schema: str | os.PathLike[str] | None = None,
    in_process: InFlight | None = None,
    when: Callable[[], dt.datetime] | None = None,
    response_id: Callable[[DuisRequest, int], str | None] | None = None,
    check: bool = True,
) -> Exchange:
    """One device Service Request toward the hub behind `client` (see the module notes).

    schema: the DUIS schema folder (else as host_tools.duis.schema finds one). in_process: the
    front's InFlight (a new one: no duplicates outside this call). when: the clock the documents
    are dated by (else now). response_id(req, n): the ResponseID of its n-th document, or None.
    check=False: the DCC has decided on the request already (the DCC front,
    host_tools.duis.users.decide, which also keeps its Request IDs in process): it is forwarded
    as it is. DuisConfigError without a schema, DuisError for a request that is not valid DUIS.
    """
    req = read(xml, schema)
    in_process = in_process if in_process is not None else InFlight()
    folder = schema_dir(schema)
    ex = Exchange(code="", sync=b"", warnings=list(req.warnings), request=req)

    def doc(rc: str, kind: str = ACK, data: Any = None) -> bytes:
        n = len(ex.responses) + (1 if ex.sync else 0)
        rid = response_id(req, n) if response_id else None
        return render_response(req, rc, kind, data, when=when() if when else None, response_id=rid, schema=folder)

    code, message = None, ""
    if check:
        hello = checked(client, "hello")
        code, message = check_request(req, target_eui=hello.data["eui"], in_process=in_process)
    if code is None and not in_process.begin(req.request_id):
        code, message = "E55", "E55: RequestID {} is already being processed".format(req.request_id)
    if code is not None:
        ex.warnings.append(message)
        ex.code, ex.sync = code, doc(code)
        return ex
    if req.service_reference_variant == "11.2" and req.args.get("execution"):
        ex.warnings.append(
            f"ExecutionDateTime {req.args['execution']}: read now (this front holds no future dated reads)"
        )
    until, tag, release = None, None, None
    try:
        ex.code, ex.sync = ACKNOWLEDGED, doc(ACKNOWLEDGED)
        op, args = _agent_args(req)
        r = checked(client, op, args)
        if not r.ok and r.err:
            ex.warnings.append(f"{r.rc}: {r.err}")
        rc, kind, data = device_part(req, r.rc, r.data, ex.warnings)
        ex.responses.append(doc(rc, kind, data))
        ex.response_codes.append(rc)
        until, tag, release = _still_processed(req, rc, kind)
    finally:
        if release is not None:
            in_process.release(release)
        in_process.end(req.request_id, until, tag)
    return ex


def _still_processed(req: DuisRequest, rc: str, kind: str) -> tuple[float | None, object, object]:
    """(until, tag, release) once the Service Response is out: a future dated 11.3 the hub took
    (I0 without an outcome) is still being processed until its ExecutionDateTime, known by its
    hub; a cancellation the hub took releases the one held for that hub."""
    if req.service_reference_variant != "11.3" or rc != codes.SUCCESS or kind != ACK:
        return None, None, None
    tag = ("11.3", req.target)
    if req.args.get("cancel"):
        return None, None, tag
    if req.args.get("execution"):
        return _utc_seconds(req.args["execution"]), tag, None
    return None, None, None


def answer(
    client, xml: bytes, schema: str | None, forget: bool = False, check: bool = True
) -> tuple[str, bytes, list[str]]:
    """(response code, DUIS document, warnings) for one device request: the Service Response if
    it was accepted, else the error response. forget: kept for callers of old; a RequestID is a
    duplicate only while its request is being processed (E55). check=False: decided on already
    (serve_device)."""
    ex = serve_device(client, xml, schema=schema, check=check)
    code, document = ex.final
    return code, document, ex.warnings


def serve_non_device(
    xml: bytes,
    store: ScheduleStore,
    *,
    schema: str | os.PathLike[str] | None = None,
    in_process: InFlight | None = None,
    now: dt.datetime | None = None,
    response_id: str | None = None,
) -> Exchange:
    """One non-device request (the non-device path): 5.1 CreateSchedule is validated, stored in
    `store` and answered I0 with its DSPScheduleID at once (host_tools.duis.dsp). A request for a
    device is E13 here; a variant that is not its reference's E48; a CommandVariant other than 8
    ("DCC Only") E12; a body that is not the variant's E49; another non-device service E11 (this
    front serves CreateSchedule only); the RequestID of a request still being processed E55.
    now: the DCC's time (default now) - dates the answer and decides "in the future"."""
    req = read(xml, schema)
    folder = schema_dir(schema)
    in_process = in_process if in_process is not None else InFlight()
    ex = Exchange(code="", sync=b"", warnings=list(req.warnings), request=req)
    sr, srv = req.service_reference, req.service_reference_variant
    code, message, sid = None, "", None
    if not (srv == sr or srv.startswith(sr + ".")):
        code, message = "E48", f"ServiceReferenceVariant {srv} is not a variant of ServiceReference {sr}"
    elif srv not in NON_DEVICE_SRVS and sr not in NON_DEVICE_SRS:
        code, message = "E13", f"{srv} is a device request; this is the non-device path"
    elif req.command_variant != 8:
        code, message = "E12", f"Command Variant {req.command_variant}: a non-device request takes 8 (DCC Only)"
    elif srv != "5.1":
        code, message = "E11", f"{srv}: this front serves one non-device request, 5.1 CreateSchedule"
    elif req.body != "CreateSchedule":
        code, message = "E49", f"ServiceReferenceVariant 5.1 needs a CreateSchedule body, not {req.body or 'none'}"
    elif not in_process.begin(req.request_id):
        code, message = "E55", f"RequestID {req.request_id} is already being processed"
    else:
        try:
            code, sid, message = dsp.create(req, store, now)
        finally:
            in_process.end(req.request_id)
    ex.warnings.append(message)
    kind = SCHEDULE_ID if sid is not None else ACK
    ex.code = code
    ex.sync = render_response(req, code, kind, sid, when=now, response_id=response_id, schema=folder)
    return ex
