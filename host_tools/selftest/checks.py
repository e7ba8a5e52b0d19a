"""`dbch selftest`: a conformance run against any board, over the same client as every command.

Checks, in order (each PASS, FAIL or SKIP with the reason):
- agent protocol: an unknown operation is answered E13, malformed arguments E49;
- DUIS front (SEC Appendix R 8.1.26 Response Code Tests that apply to a hub: the DCC's codes, so
  they are driven through `dbch duis`'s front with requests built for this hub and then altered):
  a valid request I0, E11 (a service for another device type), E13 (a request type not valid for
  the URL), E19 (a device that does not exist), E55 (the Request ID of a request still being
  processed). They need the DUIS schema folder (--schema or $DBCH_DUIS_SCHEMA_DIR) and SKIP
  without one;
- the DCC front as a DCC User drives it (host_tools.selftest.front; SEC Appendix R 8.1.26 over
  HTTPS, signed): a 6.28 acknowledged by the front and answered I0 by the board in the Service
  Response, E11, E13 and E19 from a User registered for the board, and E4 in their place from a
  User registered for no device (E4 takes precedence); each names the part that answered. They
  need the DUIS schema and SKIP without one;
- configuration validation (SRV 6.28): a valid configuration I0, one channel on a used page
  E062802, a channel outside its page E062801, an out-of-range parameter E062803, and the
  configuration unchanged by the refused ones;
- alerts: the applied configuration raises N54 8F2A (I0) upward; on boards whose clock can be
  fast-forwarded (clock.advance), traffic (op send) drives the duty cycle into limited (8F20, E59,
  naming the top talker) and critical (8F22, E59), and an hour later back to normal (8F23, 8F21);
  boards with a real clock SKIP these;
- persistence: after op "reboot" the agent says hello with boot count + 1 and still holds the
  configuration.
The board's original configuration is set again at the end (and its duty-cycle hour emptied if
traffic was driven). Alerts that were waiting when the run started are received, acknowledged and
listed in the output (with --json in full), so none is lost unseen.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import host_tools.servers  # noqa: F401  (makes the ports vboard, sim and triage known)
from agent.examples import DBCH04_CONFIG
from host_tools.errors import DbchError
from host_tools.link.client import AgentError, LinkError, Response
from host_tools.link.ports import resolve
from host_tools.selftest.harness import FAIL, Check, Harness, Report, event_text

# DBCH04 on page 30 alone (870.45 / 870.65 MHz): channels held to 2.5 % (README "Regulated
# duty-cycle limits"), above the 1.3 / 2.2 % thresholds, so limited and critical come one by one
SELFTEST_CONFIG = dict(
    DBCH04_CONFIG, LowerBandSubGHzChannels0To26=[], LowerBandSubGHzChannels27To34=[], UpperBandSubGHzChannels0To26=[]
)
ORIGINATOR = "90-B3-D5-1F-30-01-00-00"  # the DCC Boxed templates' requesting party
GSME = "00-DB-12-34-56-78-90-B1"  # the device the driven traffic is attributed to
HOUR_PLUS_MS = 61 * 60 * 1000  # past the duty-cycle hour
FRAME_LEN = 125  # the largest MAC payload: fewest frames per second of airtime
BATCH = 500  # frames per send request while driving the duty cycle
MAX_BATCHES = 40  # 20000 frames: enough for any threshold item 5/6 allow (2.5 % = 8100 frames)
DUIS_CHECKS = (  # each with the response code expected
    ("DUIS 6.30 read configuration", "I0"),
    ("DUIS E11 service for another device type", "E11"),
    ("DUIS E13 request type not valid for the URL", "E13"),
    ("DUIS E19 device doesn't exist", "E19"),
    ("DUIS E55 duplicate request ID", "E55"),
)


class Selftest(Harness):
    """The conformance run against the board at `path` (a device path or URL; `spec` is what
    the user gave)."""

    def __init__(self, path: str, *, schema: str | None = None, reboot_timeout: float = 30.0, **options):
        """schema: the DUIS schema folder (else as `dbch duis` finds one; without one the DUIS
        checks skip); options: spec, baud, timeout and progress, as for Harness."""
        super().__init__(path, **options)
        self.schema = schema
        self.reboot_timeout = reboot_timeout
        self.original: dict | None = None
        self.applied: dict | None = None
        self.drove_traffic = False

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> Report:
        t0 = time.monotonic()
        self.agent = self._open()
        try:
            self.report.device = dict(self.agent.answer("hello"))  # no hello: no run
        except DbchError:
            self._close()
            raise
        try:
            self.check_protocol()
            self.check_duis()
            self.subscribe()
            self.drain()
            self.check_config()
            self.check_front()
            self.check_duty_alerts()
            self.check_reboot()
        except (LinkError, AgentError, OSError) as e:  # pyserial's errors are OSErrors
            self.add("link", "answers", "lost", False, str(e))
        finally:
            try:
                self.restore()
            except (LinkError, OSError) as e:
                self.add("restore: original configuration", "I0", "no answer", False, str(e))
            finally:
                self._close()
        self.report.seconds = round(time.monotonic() - t0, 2)
        return self.report

    def check_protocol(self) -> None:
        self.expect_rc("protocol: unknown operation", "E13", "selftest.no-such-op")
        self.expect_rc("protocol: missing argument", "E49", "config.set", {})
        self.expect_rc("protocol: argument of the wrong type", "E49", "send", {"count": "many"})

    # -- DUIS ----------------------------------------------------------------------------------
    def _duis_requests(self, eui: str) -> list[tuple[str, str, bytes | None, str]]:
        from host_tools.duis.compose import request_xml

        counter = int(time.time() * 1000)
        ok = request_xml("6.30", eui, ORIGINATOR, counter)
        channel = request_xml("6.31", eui, ORIGINATOR, counter + 1)

        def edit(xml: bytes, *pairs: tuple[str, str]) -> bytes | None:
            text = xml.decode()
            for old, new in pairs:
                if old not in text:
                    return None
                text = text.replace(old, new)
            return text.encode()

        supply = edit(
            channel,
            ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>7.4<"),
            ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>7.4<"),
            ("<sr:ReadCHFSubGHzChannel />", "<sr:ReadSupplyStatus />"),
        )
        inventory = edit(
            channel,
            ("<sr:CommandVariant>1<", "<sr:CommandVariant>8<"),
            ("<sr:ServiceReference>6.31<", "<sr:ServiceReference>8.2<"),
            ("<sr:ServiceReferenceVariant>6.31<", "<sr:ServiceReferenceVariant>8.2<"),
            ("<sr:ReadCHFSubGHzChannel />", f"<sr:ReadInventory><sr:DeviceID>{eui}</sr:DeviceID></sr:ReadInventory>"),
        )
        raw = bytes.fromhex(eui.replace("-", ""))
        other = "-".join(f"{b:02X}" for b in raw[:7] + bytes([raw[7] ^ 0xFF]))
        missing = request_xml("6.31", other, ORIGINATOR, counter + 2)
        built = [
            (ok, "a valid request for this hub"),
            (supply, "7.4 ReadSupplyStatus sent to the hub"),
            (inventory, "8.2 ReadInventory (DCC Only)"),
            (missing, f"6.31 for {other}"),
            (ok, "the 6.30 request again"),
        ]
        return [(name, rc, xml, what) for (name, rc), (xml, what) in zip(DUIS_CHECKS, built)]

    def check_duis(self) -> None:
        from host_tools.duis.errors import DuisConfigError
        from host_tools.duis.front import InFlight, serve_device
        from host_tools.duis.requests import parse_request
        from host_tools.duis.schema import schema_dir

        try:
            folder = schema_dir(self.schema)
        except DuisConfigError as e:
            for name, rc in DUIS_CHECKS:
                self.skip(name, rc, str(e))
            return
        for name, rc, xml, what in self._duis_requests(self.report.device["eui"]):
            if xml is None:
                self.add(name, rc, "not built", False, "the built request did not have the expected form")
                continue
            in_process = InFlight()
            if rc == "E55":  # the same RequestID again while the first request is still being processed
                in_process.begin(parse_request(xml).request_id)
            try:
                ex = serve_device(self.client, xml, schema=str(folder), in_process=in_process)
                got, warnings = ex.final[0], ex.warnings
            except DbchError as e:
                self.add(name, rc, "error", False, f"{what}: {e}")
                continue
            shown = [w for w in warnings if not w.startswith("unsigned request")]
            self.add(name, rc, got, got == rc, "; ".join([what, *shown]))

    def check_front(self) -> None:
        from host_tools.duis.errors import DuisConfigError
        from host_tools.duis.schema import schema_dir
        from host_tools.selftest.front import FRONT_CHECKS, check_front

        try:
            folder = schema_dir(self.schema)
        except DuisConfigError as e:
            for name, rc in FRONT_CHECKS:
                self.skip(name, rc, str(e))
            return
        try:  # the configuration the board holds now, so that the 6.28 changes nothing
            check_front(self, str(folder), self.applied or SELFTEST_CONFIG)
        except DbchError as e:
            self.add("front: the DCC front serves", "serving", "error", False, str(e))

    # -- configuration -------------------------------------------------------------------------
    def check_config(self) -> None:
        r = self.request("config.get")
        self.original = r.data if r.ok else None
        after = self.last_seq()
        r = self.expect_rc("config: valid configuration", "I0", "config.set", {"config": SELFTEST_CONFIG})
        if r is not None and r.ok:
            self.applied = self.request("config.get").data
        cases = [
            ("config: one channel on a used page", "E062802", {"LowerBandSubGHzChannels0To26": [1]}),
            ("config: channel outside its page", "E062801", {"LowerBandSubGHzChannels27To34": [28, 5]}),
            ("config: parameter out of range", "E062803", {"NormalLimitedDutyCycleThreshold": "2.5"}),
        ]
        for name, rc, change in cases:
            self.expect_rc(name, rc, "config.set", {"config": {**SELFTEST_CONFIG, **change}})
        now = self.request("config.get").data
        self.add(
            "config: refused ones change nothing",
            "the valid configuration",
            "unchanged" if now == self.applied and now is not None else "changed",
            now == self.applied and now is not None,
        )
        if self.applied is None:
            self.skip("alert: configuration changed", "N54 8F2A I0", "the valid configuration was not applied")
            return
        ev = self.expect_alert("alert: configuration changed", "8F2A", "I0", after)
        if ev is not None and (ev.data or {}).get("payload") != self.applied:
            self.report.checks[-1].result = FAIL
            self.report.checks[-1].detail += ": its payload is not the applied configuration"

    # -- duty cycle ------------------------------------------------------------------------------
    def _advance(self, ms: int) -> Response:
        return self.request("clock.advance", {"ms": ms})

    def _drive(self, until: str, device: str | None) -> tuple[str, int]:
        """Send full frames in batches until the duty-cycle state is `until`; (state, frames sent)."""
        args = {"count": BATCH, "len": FRAME_LEN}
        if device:
            args["device"] = device
        sent = 0
        state = "?"
        for _ in range(MAX_BATCHES):
            r = self.request("send", args, max(self.timeout, 30.0))
            if not r.ok:
                return f"{r.rc} {r.err or ''}".strip(), sent
            sent += r.data["sent"]
            state = r.data["duty"]
            if state == until or r.data["sent"] == 0:
                break
        return state, sent

    def check_duty_alerts(self) -> None:
        names = [
            ("alert: limited duty cycle", "N54 8F20 E59"),
            ("alert: critical duty cycle", "N54 8F22 E59"),
            ("alert: duty cycle back to normal", "N54 8F23 I0, 8F21 I0"),
        ]
        if self.applied is None:
            for name, exp in names:
                self.skip(name, exp, "no configuration applied: the duty-cycle thresholds are unknown")
            return
        probe = self.request("clock.advance", {"ms": 0})
        if not probe.ok:
            why = f"this board's clock is real time (clock.advance: {probe.rc} {probe.err or ''}): reaching the thresholds would take an hour of transmitting"
            for name, exp in names:
                self.skip(name, exp, why)
            return
        self.drove_traffic = True
        self._advance(HOUR_PLUS_MS)  # start from an empty hour
        self.collect(0.3)
        after = self.last_seq()
        state, sent = self._drive("limited", GSME)
        if state != "limited":
            self.add(names[0][0], names[0][1], f"state {state}", False, f"{sent} frames sent")
        else:
            self.expect_alert(names[0][0], "8F20", "E59", after, {"DeviceIDToSuspend": GSME})
            self.report.checks[-1].detail += f" after {sent} frames of {FRAME_LEN} bytes"
        after = self.last_seq()
        state, sent = self._drive("critical", None)
        if state != "critical":
            self.add(names[1][0], names[1][1], f"state {state}", False, f"{sent} more frames sent")
        else:
            self.expect_alert(names[1][0], "8F22", "E59", after)
            self.report.checks[-1].detail += f" after {sent} more frames"
        after = self.last_seq()
        self._advance(HOUR_PLUS_MS)
        self.drove_traffic = False
        a = self.wait_alert("8F23", after)
        b = self.wait_alert("8F21", after)
        duty = (self.request("status").data or {}).get("duty", {})
        got = ", ".join(event_text(e) for e in (a, b) if e) or "no alert"
        ok = bool(a and b and a.data.get("rc") == "I0" and b.data.get("rc") == "I0") and duty.get("state") == "normal"
        self.add(names[2][0], names[2][1], got, ok, f"state {duty.get('state')} an hour later")

    # -- reboot ----------------------------------------------------------------------------------
    def _hello_after_reboot(self) -> Response | None:
        self._close()
        deadline = time.monotonic() + self.reboot_timeout
        time.sleep(0.2)
        while time.monotonic() < deadline:
            try:
                self.agent = self._open()
            except LinkError:
                time.sleep(0.3)  # a USB board's port comes back after its reset
                continue
            try:
                r = self.request("hello", {"events": True}, 1.0)
                if r.ok:
                    return r
            except LinkError:
                pass
            self._close()
        return None

    def check_reboot(self) -> None:
        boot = self.report.device.get("boot")
        before = self.request("config.get").data
        self.collect(0.2)
        r = self.expect_rc("reboot: acknowledged", "I0", "reboot")
        if r is None or not r.ok:
            self.skip("reboot: boot count + 1", f"boot {boot + 1 if boot else '?'}", "no reboot")
            self.skip("reboot: configuration kept", "the configuration before", "no reboot")
            return
        hello = self._hello_after_reboot()
        if hello is None:
            why = f"the agent did not come back within {self.reboot_timeout:g} s of the reboot"
            self.add("reboot: boot count + 1", f"boot {boot + 1}", "no hello", False, why)
            self.skip("reboot: configuration kept", "the configuration before", why)
            return
        new_boot = hello.data.get("boot")
        self.add("reboot: boot count + 1", f"boot {boot + 1}", f"boot {new_boot}", new_boot == boot + 1)
        self.report.device["boot"] = new_boot
        after = self.request("config.get").data
        self.add(
            "reboot: configuration kept",
            "the configuration before",
            "same" if after == before else "different" if after else "none",
            after == before and before is not None,
        )

    # -- leave the board as it was ---------------------------------------------------------------
    def restore(self) -> None:
        if self.client is None or not self.connected:
            if self.original is not None or self.drove_traffic:
                self.add("restore: original configuration", "I0", "-", False, "the board cannot be reached")
            return
        if self.drove_traffic:  # an interrupted duty-cycle check: empty the hour again
            self._advance(HOUR_PLUS_MS)
            self.drove_traffic = False
        if self.original is None:
            if self.applied is not None:
                self.skip(
                    "restore: original configuration",
                    "I0",
                    "the board had no configuration before the run; the test configuration stays",
                )
            return
        current = self.request("config.get").data
        if current == self.original:
            self.add("restore: original configuration", "I0", "unchanged", True, "nothing to restore")
            return
        r = self.request("config.set", {"config": self.original})
        self.add("restore: original configuration", "I0", r.rc, r.ok, r.err or "")
        if self.subscribed:
            self.collect(0.3)  # the restore's own alerts


def run(
    port: str = "vboard",
    *,
    baud: int = 115200,
    timeout: float = 5.0,
    schema: str | None = None,
    reboot_timeout: float = 30.0,
    progress: Callable[[Check], None] | None = None,
) -> Report:
    """Run every check against the board at --port value `port`; a DbchError if it cannot be
    reached at all."""
    path = resolve(port)  # a DbchError when a virtual board or simulated agent cannot start
    return Selftest(
        path, spec=port, baud=baud, timeout=timeout, schema=schema, reboot_timeout=reboot_timeout, progress=progress
    ).run()
