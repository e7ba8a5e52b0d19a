"""The DCC front (`dbch dcc serve`): DUIS over HTTPS as DCC Boxed exposes it, with hubs behind it.

A User POSTs a DUIS request (application/xml) to one of the DCC Boxed paths (host_tools.dcc.routes;
another path is HTTP 404). In order, the front:
  1. reads it (not XML, or not an sr:Request: HTTP 400, nothing to answer in DUIS);
  2. verifies it (the `verify` seam; signed, the certificate of the User its RequestID names):
     refused -> E100;
  3. validates it against the DUIS schema (HTTP 400 with the schema errors);
  4. decides on it as the DCC does, in one order in one place (host_tools.duis.users.decide with
     the `users` seam): E1-E5 (E4 before any validation code, SEC Appendix R 8.1.26), then E48,
     E13 (the path's URL against the request's type), E12, E49, E55 (a RequestID still in
     process here), E19 (a device that is not one of the hubs behind it), E11 -> that code;
  5. on serviceS and serviceT: I99 (Acknowledgement), and the hub's answer (the `answer` seam,
     host_tools.duis.front.answer without its own checks) follows as the Service Response, with a
     ResponseID, signed, queued for the User's receive URL (a User without one: E1); a hub that
     cannot be asked is E20 (Unable to Communicate with Device), one that does not answer in time
     E21 (No Response received). serviceD: this front serves no non-device service yet (HTTP
     501 once the DCC's decision has passed).
Every document the front sends goes through the `sign` seam. DCC Alerts from the hubs' outboxes
go, with a ResponseID each, to every User the `users` seam names for them (host_tools.dcc.hubs).
A Service Response or DCC Alert that is not valid DUIS as signed (the User's endpoint would refuse
it on every try) is not queued: it is kept as JSON in the state folder's `held/`, with why.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.dcc import routes
from host_tools.dcc.deliver import Deliverer, http_poster
from host_tools.dcc.documents import with_response_id
from host_tools.dcc.httpd import Answer, DuisHttpServer, Posted
from host_tools.dcc.hubs import HubWorker
from host_tools.dcc.queue import DEFAULT_BASE, DEFAULT_CAP, DeliveryQueue
from host_tools.dcc.seams import Seams
from host_tools.duis.errors import DuisError, DuisRenderError, DuisValidationError
from host_tools.duis.requests import DuisRequest, make_request_id, parse_request, read_request
from host_tools.duis.responses import render_response
from host_tools.duis.schema import validate
from host_tools.duis.users import decide
from host_tools.errors import DbchError
from host_tools.files import write_json
from host_tools.link.agent import Agent
from host_tools.link.client import AgentTimeout, Event, LinkError

Note = Callable[[str], None]


def _link_code(error: BaseException) -> str:
    """The DUIS code for a hub that could not be asked: E21 (No Response received from Device) when
    it did not answer in time, E20 (Unable to Communicate with Device) when the link failed."""
    return "E21" if isinstance(error, (AgentTimeout, FutureTimeout)) else "E20"


class DccFrontError(DbchError):
    """The front cannot serve as asked; the message says what to do."""


def _default_answer(client, xml, schema):
    from host_tools.duis.front import answer

    return answer(client, xml, schema, check=False)  # the front has decided


def _default_render_alert(kind, data, response_id):
    from host_tools.duis.alerts import render_alert

    return render_alert(kind, data, response_id=response_id)


@dataclass
class FrontOptions:
    host: str = "127.0.0.1"
    port: int = 0
    context: ssl.SSLContext | None = None  # the server's TLS; None: plain HTTP on loopback
    client_context: ssl.SSLContext | None = None  # for deliveries to https:// receive URLs
    allow_http: bool = False  # deliveries to http:// loopback receive URLs
    state: Path = Path(".")
    schema: Any = None
    retry_base: float = DEFAULT_BASE
    retry_cap: float = DEFAULT_CAP
    seams: Seams = field(default_factory=Seams)
    answer: Callable = _default_answer  # (client, xml, schema) -> (rc, xml, warnings)
    render_alert: Callable = _default_render_alert  # (kind, data, response_id) -> xml


class DccFront:
    """The front: start() serves, stop() stops (the queue stays on disk for the next start)."""

    def __init__(self, agents: list[Agent], options: FrontOptions, note: Note | None = None):
        self.opt = options
        self.note = note or (lambda _m: None)
        self.queue = DeliveryQueue(Path(options.state) / "queue", base=options.retry_base, cap=options.retry_cap)
        self.deliverer = Deliverer(
            self.queue, http_poster(options.client_context, allow_http=options.allow_http), self.note
        )
        self.hubs = [
            HubWorker(a, options.answer, self._take_alert, schema=options.schema, note=self.note) for a in agents
        ]
        self.in_process: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server = DuisHttpServer(options.host, options.port, self.handle, options.context)
        self.counts = {"requests": 0, "acknowledged": 0, "responses_queued": 0, "alerts_queued": 0, "held": 0}

    # -- running -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.opt.context is not None else "http"
        host = "[{}]".format(self.opt.host) if ":" in self.opt.host else self.opt.host
        return "{}://{}:{}".format(scheme, host, self.server.port)

    def _lock_state(self) -> None:
        # one front a state folder: two would send each delivery twice
        import fcntl

        self._lockfile = open(Path(self.opt.state) / "lock", "a")  # noqa: SIM115 - held while serving
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            self.server.server_close()
            raise DccFrontError(
                "another dbch dcc serve uses {}: stop it, or give this one its own --state DIR".format(self.opt.state)
            ) from None

    def start(self) -> DccFront:
        self._lock_state()
        for hub in self.hubs:
            hub.start()
        t = threading.Thread(target=self.deliverer.run, args=(self._stop,), name="dcc-deliver", daemon=True)
        t.start()
        self._threads = [t, self.server.start()]
        return self

    def stop(self) -> None:
        self._stop.set()
        self.queue.added.set()
        self.server.shutdown()
        self.server.server_close()
        for hub in self.hubs:
            hub.stop()
        for hub in self.hubs:
            hub.join(timeout=10)
        for t in self._threads:
            t.join(timeout=10)
        self._lockfile.close()

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def status(self) -> dict:
        return {
            "url": self.url,
            "hubs": [h.eui for h in self.hubs],
            "pending": len(self.queue.pending()),
            "delivered": self.deliverer.delivered,
            **self.counts,
        }

    # -- requests ----------------------------------------------------------------------------
    def _hub_for(self, req: DuisRequest) -> HubWorker:
        return next((h for h in self.hubs if h.eui == req.target), self.hubs[0])

    def _sync(self, xml: bytes) -> Answer:
        return Answer(200, self.opt.seams.sign(xml))

    def handle(self, posted: Posted) -> Answer:
        endpoint = routes.endpoint_of(posted.path)
        if endpoint is None:
            return Answer(
                404, "not a DUIS API path: POST to {}\n".format(", ".join(routes.PATHS)).encode(), "text/plain"
            )
        if posted.content_type not in ("application/xml", "text/xml"):
            return Answer(415, b"POST DUIS XML as application/xml\n", "text/plain")
        try:
            req = parse_request(posted.body)
        except DuisError as e:
            return Answer(400, "not a DUIS request: {}\n".format(e).encode(), "text/plain")
        self._count("requests")
        try:
            self.opt.seams.verify(posted.body)
        except (DbchError, ValueError) as e:
            self.note("{} from {}: E100 ({})".format(req.request_id, posted.peer, e))
            return self._sync(render_response(req, "E100"))
        try:
            req = read_request(posted.body, self.opt.schema)
        except DuisValidationError as e:
            return Answer(400, "{}\n".format(e).encode(), "text/plain")
        with self._lock:  # the Request IDs in process (E55) are read and added at once
            decision = decide(
                req,
                self.opt.seams.users,
                target_eui=[h.eui for h in self.hubs],
                in_process=self.in_process,
                endpoint=endpoint,
            )
            if decision.ok:
                self.in_process.add(req.request_id)
        if not decision.ok:
            self.note("{}: {}".format(req.request_id, decision.message))
            return self._sync(render_response(req, decision.code))
        user = decision.user
        if endpoint == "non-device" or not user.receive_url:
            with self._lock:
                self.in_process.discard(req.request_id)
            if endpoint == "non-device":
                self.note(
                    "{}: {} is a non-device service this front does not serve".format(
                        req.request_id, req.service_reference_variant
                    )
                )
                return Answer(501, b"this front serves no non-device service yet\n", "text/plain")
            self.note(
                "{}: E1 (User {} has no receive URL: its answers cannot be delivered)".format(req.request_id, user.eui)
            )
            return self._sync(render_response(req, "E1"))
        future = self._hub_for(req).submit(posted.body)
        future.add_done_callback(lambda f: self._respond(req, user, f))
        self._count("acknowledged")
        return self._sync(render_response(req, "I99"))

    def _respond(self, req: DuisRequest, user, future: Future) -> None:
        # in the hub's thread, once it has answered: the Service Response, queued for the User
        try:
            try:
                rc, out, _warnings = future.result()
            except LinkError as e:
                rc = _link_code(e)
                out = render_response(req, rc)
                self.note("{}: {} ({})".format(req.request_id, rc, e))
            rid = make_request_id(req.target, user.eui, self.queue.next_counter())
            signed = self.opt.seams.sign(with_response_id(out, rid))
            why = self._invalid(signed)
            if why:  # the User's endpoint would refuse it on every try: kept, not sent
                path = Path(self.opt.state) / "held" / "{}.json".format(rid.replace(":", "_"))
                record = {"response_id": rid, "request_id": req.request_id, "why": why, "xml": signed.decode()}
                write_json(path, record, sync=True)
                self._count("held")
                self.note("{}: the Service Response {} kept in {} ({})".format(req.request_id, rc, path, why))
                return
            self.queue.put(rid, user.receive_url, signed)
            self._count("responses_queued")
            self.note("{}: {} queued for {} as {}".format(req.request_id, rc, user.receive_url, rid))
        except Exception as e:
            self.note(
                "{}: the Service Response could not be queued: {}: {}".format(req.request_id, type(e).__name__, e)
            )
        finally:
            with self._lock:
                self.in_process.discard(req.request_id)

    def _invalid(self, xml: bytes) -> str | None:
        """Why a document the front would send is not valid DUIS (as signed), or None: nothing
        invalid is sent (not judged without a schema folder)."""
        if self.opt.schema is None:
            return None
        errors = validate(xml, self.opt.schema)
        if not errors:
            return None
        return "not valid DUIS as signed ({} errors): {}".format(len(errors), "; ".join(errors[:2]))

    # -- alerts ------------------------------------------------------------------------------
    def _hold(self, hub_eui: str, ev: Event, why: str) -> None:
        path = Path(self.opt.state) / "held" / "{}-{}.json".format(hub_eui.replace("-", ""), ev.seq)
        write_json(path, {"hub": hub_eui, "seq": ev.seq, "kind": ev.kind, "data": ev.data, "why": why}, sync=True)
        self._count("held")
        self.note("{} #{} {} kept in {} ({})".format(hub_eui, ev.seq, ev.kind, path, why))

    def _take_alert(self, hub_eui: str, ev: Event) -> None:
        users = self.opt.seams.users.alert_recipients(hub_eui)
        if not users:
            return self._hold(hub_eui, ev, "no User takes alerts")
        made = []
        for user in users:
            rid = make_request_id(hub_eui, user.eui, self.queue.next_counter())
            try:
                xml = self.opt.render_alert(ev.kind, ev.data, rid)
            except DuisRenderError as e:
                return self._hold(hub_eui, ev, "no DCC Alert is made of it: {}".format(e))
            xml = self.opt.seams.sign(xml)
            why = self._invalid(xml)
            if why:
                return self._hold(hub_eui, ev, why)
            made.append((rid, user.receive_url, xml))
        for rid, url, xml in made:
            self.queue.put(rid, url, xml)
            self._count("alerts_queued")
            self.note("{} #{} {} queued for {} as {}".format(hub_eui, ev.seq, ev.kind, url, rid))
