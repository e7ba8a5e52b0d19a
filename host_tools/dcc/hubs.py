"""The hubs behind the DCC front: one worker thread per hub owns its link (serial, a pty, the
triage link: any --port), forwards the requests the front has taken, one at a time, and between
them takes the hub's upward alerts from its outbox.

An alert is acknowledged to the hub only after what is made of it is on disk: rendered as a DCC
Alert and queued for every User it goes to (host_tools.dcc.queue), or, for an event no DCC Alert
is made of (a kind render_alert does not take), kept as JSON in the front's `held/` folder. A
front that dies in between gets the alert again from the hub (its outbox keeps it until the
acknowledgement), and the host's seen store (host_tools.link.agent) drops the second copy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from host_tools.link.agent import Agent, checked
from host_tools.link.client import AgentClient, Event

# answer(client, request xml, schema) -> (response code, response xml, warnings): the stand-in
# for the DCC Data Systems toward one hub (host_tools.duis.front.answer is the default)
Answer = Callable[[AgentClient, bytes, Any], "tuple[str, bytes, list[str]]"]
# take_alert(hub EUI, event): queue it durably (raise if it cannot be kept: it is then not acked)
TakeAlert = Callable[[str, Event], None]


@dataclass
class Job:
    xml: bytes
    future: Future = field(default_factory=Future)


class HubWorker(threading.Thread):
    """One hub: `submit` a request, get a Future of answer()'s result."""

    def __init__(
        self,
        agent: Agent,
        answer: Answer,
        take_alert: TakeAlert,
        *,
        schema: Any = None,
        poll: float = 0.2,
        note: Callable[[str], None] | None = None,
    ):
        super().__init__(name="dcc-hub", daemon=True)
        self.agent = agent
        self.answer = answer
        self.take_alert = take_alert
        self.schema = schema
        self.poll = poll
        self.note = note or (lambda _m: None)
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.hello = agent.subscribe()  # upward events on; the device's seen store loaded
        self.eui: str = self.hello["eui"]
        self.alerts_taken = 0
        self._halt = threading.Event()

    def submit(self, xml: bytes) -> Future:
        job = Job(xml)
        self.jobs.put(job)
        return job.future

    def stop(self) -> None:
        self._halt.set()
        self.jobs.put(None)

    def _do(self, job: Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            result = self.answer(self.agent.client, job.xml, self.schema)
        except BaseException as e:  # the caller hears of it through the Future
            job.future.set_exception(e)
            return
        finally:
            self._resubscribe()
        job.future.set_result(result)

    def _resubscribe(self) -> None:
        # answer() says hello without upward events, which turns them off on this link: on again
        try:
            checked(self.agent.client, "hello", {"events": True})
        except Exception as e:
            self.note("{}: upward events not turned on again: {}".format(self.eui, e))

    def _alerts(self, duration: float) -> None:
        for ev in self.agent.receive(duration):
            try:
                self.take_alert(self.eui, ev)
            except Exception as e:
                # not kept, so not acknowledged: the hub sends it again
                self.note("alert #{} from {} not queued ({}): left in the hub's outbox".format(ev.seq, self.eui, e))
                return
            self.alerts_taken += 1

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                job = self.jobs.get(timeout=self.poll)
            except queue.Empty:
                job = None
            if job is not None:
                self._do(job)
                continue
            if self._halt.is_set():
                break
            try:
                self._alerts(self.poll)
            except Exception as e:  # a link that failed: said, and tried again
                self.note("alerts from {}: {}".format(self.eui, e))
                self._halt.wait(1.0)
        while True:  # what was submitted and not done hears why
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the front stopped before the hub was asked"))
