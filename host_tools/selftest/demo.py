"""`dbch demo`: the main job on the default virtual board, end to end.

Flashes the agent (only what changed), applies a Sub GHz Configuration like the DCC's DBCH04
example, lets simulated HAN devices join and misbehave until the duty-cycle alerts appear
(han_traffic), stages and activates a signed
firmware image (the board reboots into it and reports N64), then prints a short report: the
configuration applied, one row per upward alert, the firmware activation and a summary. The
alerts are also DCC alerts in DUIS XML (--format duis, --out DIR), checked against the DCC's DUIS
schema when one is found (--schema DIR, else as `dbch duis` finds it). Safe to run again: each run starts an hour of virtual
time later, so the previous run's traffic has aged out.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import host_tools.servers  # noqa: F401  (makes the ports vboard, sim and triage known)
from agent.examples import DBCH04_CONFIG
from host_tools.errors import DbchError
from host_tools.firmware import image_build, sign, stage
from host_tools.link.agent import Agent
from host_tools.link.client import Event, LinkError
from host_tools.link.ports import DEFAULT_BAUD, DEFAULT_TIMEOUT, resolve

DEMO_CONFIG = dict(
    DBCH04_CONFIG,
    LowerBandSubGHzChannels0To26=[15, 16],
    LowerBandSubGHzChannels27To34=[],
    LowerBandSubGHzChannels35To61=[],
    UpperBandSubGHzChannels0To26=[],
)  # 866.25 / 866.45 MHz: 1 % (README "Regulated duty-cycle limits")
DEMO_REGION = "North"
DEMO_EUI = "00-DB-12-34-56-78-90-A2"
# the demo's HAN: simulated devices beside the hub (hal/sim/han.py), driven by `dbch han`
ESME = "00-00-00-00-00-00-01-01"
GSME = "00-00-00-00-00-00-01-02"
IHD = "00-00-00-00-00-00-01-03"
PPMID = "00-00-00-00-00-00-01-04"
HAN = ((ESME, "ESME"), (GSME, "GSME"), (IHD, "IHD"), (PPMID, "PPMID"))
DCC_REQUEST = f"90-B3-D5-1F-30-01-00-00:{ESME}:1000"  # a DCC command to the ESME (originator:target:counter)
HOUR_MS = 3600 * 1000
DUIS_KINDS = ("N54", "N64")  # the upward events that are DCC alerts, with a DUIS document each


class DemoError(DbchError):
    """The demo cannot go on; the message says why."""


@dataclass
class Arrival:
    """An upward event, when the device raised it and during which step of the demo."""

    ev: Event
    when: dt.datetime
    during: str


@dataclass
class Demo:
    """What a run did: the board's status at the end, the configuration's answer, the upward
    alerts (`seen`, and as DUIS documents in `alerts`), the firmware update and the schema check."""

    port: str
    status: dict = field(default_factory=dict)
    config_rc: str = ""
    seen: list[Arrival] = field(default_factory=list)
    firmware: dict | None = None  # {"from", "to", "hash"} of the update, None with no flash
    minutes: int = 0  # virtual minutes of traffic
    alerts: list[dict] = field(default_factory=list)  # one per DCC alert, with its DUIS "xml"
    files: list[Path] = field(default_factory=list)  # the documents written (out)
    schema: Path | None = None  # the schema folder the documents were checked against
    invalid: list[str] = field(default_factory=list)  # "NAME: first error" of each invalid document
    seconds: float = 0.0


def run(
    port: str,
    *,
    flash: bool = True,
    baud: int = DEFAULT_BAUD,
    timeout: float = DEFAULT_TIMEOUT,
    out: str | None = None,
    schema: str | None = None,
    say: Callable[[str], None] = lambda text: None,
    notice: Callable[[str], None] | None = None,
) -> Demo:
    """The demo on the board at --port value `port` (a virtual board is started if need be).
    flash: the agent is flashed first and a firmware update is done; out: a folder for the DUIS
    documents; schema: the DUIS schema folder (else as `dbch duis` finds one: each document is
    checked against it as it is rendered, and none is rendered without one); say: told each step and what it did; notice: as for connect."""
    from host_tools.duis.alerts import render_alert
    from host_tools.duis.times import utc_text

    t0 = time.monotonic()
    path = resolve(port, start=True)  # the demo starts its virtual board itself
    if flash:
        flash_agent(port, path, say)
    agent = Agent.open(port, baud=baud, timeout=timeout, notice=notice)
    agent.subscribe()
    demo = Demo(port=str(port))
    # a fresh hour: the previous run's traffic ages out of the duty-cycle window
    agent.request("clock.advance", {"ms": HOUR_MS + 120000})
    demo.seen = take(agent, 0.2, "clock +1 h")  # what earlier runs left, and the hour that just passed

    say("== apply the Sub GHz Configuration (DBCH04 example)")
    r = agent.set_config(DEMO_CONFIG, DEMO_REGION)
    if not r.ok:
        raise DemoError(f"configuration refused: {r.rc} {r.err}")
    demo.config_rc = r.rc
    say(f"   {r.rc}: applied")
    demo.seen += take(agent, 0.2, "configuration")

    say("== a HAN joins the hub; an IHD, then a PPMID, flood it with requests")
    han_traffic(agent, demo, say)
    demo.seen += take(agent, 1.0, f"traffic min {demo.minutes}")
    demo.status = agent.request("status").data
    duty = demo.status["duty"]
    say(
        f"   {demo.minutes} virtual minutes of traffic; duty cycle now {duty['state']} at {duty['permille'] / 10:.1f} %"
    )
    if flash:
        running = demo.status["version"]
        events, digest = upgrade(agent, running, say)
        demo.seen += events
        demo.status = agent.request("status").data
        demo.firmware = {"from": running, "to": demo.status["version"], "hash": digest.hex().upper()}

    say(f"== the upward alerts as DUIS XML ({len(demo.seen)}), checked against the schema")
    for a in demo.seen:
        if a.ev.kind in DUIS_KINDS:
            demo.alerts.append(
                {
                    "seq": a.ev.seq,
                    "kind": a.ev.kind,
                    "code": a.ev.data.get("DeviceAlertCode"),
                    "rc": a.ev.data.get("rc"),
                    "name": alert_name(a.ev),
                    "when": utc_text(a.when),
                    "during": a.during,
                    # dated by the device; checked against the schema as it is rendered
                    "xml": render_alert(a.ev.kind, a.ev.data, schema=schema).decode(),
                }
            )
    demo.files = write_documents(demo.alerts, Path(out)) if out else []
    demo.schema, demo.invalid = check_documents(demo.alerts, schema, say)
    demo.seconds = time.monotonic() - t0
    return demo


def han_traffic(agent: Agent, demo: Demo, say: Callable[[str], None]) -> None:
    """The duty-cycle alerts from device behaviour: the HAN joins, an IHD floods the hub with
    requests until Limited suspends it (8F20 names it), a PPMID floods until Critical suspends
    every device by broadcast (8F22), the floods stop, essential commands to the ESME fill the hour
    to the regulated limit (8F24), and a DCC command that cannot go then is discarded (8F2C)."""
    from host_tools.link import han

    present = {d["eui"] for d in han.listing(agent).get("simulated") or []}
    for eui, kind in HAN:
        if eui in present:  # still on the medium from an earlier run on this boot
            han.script(agent, eui, "normal")
        else:
            han.add(agent, eui, kind)
    say(f"   {len(HAN)} devices on the medium: " + ", ".join(f"{kind} {eui}" for eui, kind in HAN))
    han.script(agent, IHD, "flood")
    state = "normal"
    while demo.minutes < 60 and state not in ("critical", "regulated"):
        agent.request("clock.advance", {"ms": 60000}, timeout=60)
        demo.minutes += 1
        demo.seen += take(agent, 0.02, f"traffic min {demo.minutes}")
        state = agent.request("status").data["duty"]["state"]
        if state == "limited":
            han.script(agent, PPMID, "flood")
    for eui in (IHD, PPMID):
        han.script(agent, eui, "normal")
    say(f"   {demo.minutes} virtual minutes of floods: duty cycle {state}")
    for _ in range(20):
        if state == "regulated":
            break
        state = han.push(agent, ESME, length=100, essential=True, count=200)["duty"]
    demo.seen += take(agent, 0.2, f"traffic min {demo.minutes}")
    outcome = han.push(agent, ESME, request_id=DCC_REQUEST)["outcome"]
    say(f"   essential commands to the ESME: duty cycle {state}; a DCC command then: {outcome}")


def alert_name(ev: Event) -> str:
    """A row's description: the GBCS alert's name (N54) or the DCC alert's, and what it names."""
    from host_tools.duis import dcc_tables

    d = ev.data
    if ev.kind == "N54":
        name = dcc_tables.GBCS_ALERTS.get(int(d["DeviceAlertCode"], 16), ("?",))[0]
        p = d.get("payload")
        if isinstance(p, dict) and p.get("DeviceIDToSuspend"):
            name += f": suspends {p['DeviceIDToSuspend']}"
        elif isinstance(p, dict) and p.get("request_id"):
            name += f": {p.get('cra')} {p['request_id']}"
        elif isinstance(p, dict) and p.get("DeviceID"):
            name += f": {p['DeviceID']} ({p.get('DeviceType') or '?'}) not joined"
        elif isinstance(p, dict) and "page" in p and "channel" in p:
            name += f": page {p['page']} ch {p['channel']}"
        return name
    if ev.kind == "N64":
        return f"{dcc_tables.DCC_ALERTS['N64'][0]}: now runs {d.get('FirmwareVersion')}"
    text = str(d)
    return text if len(text) <= 60 else text[:57] + "..."


# -- DUIS documents ----------------------------------------------------------------------------


def document_name(alert: dict) -> str:
    """003-8F20-N54.xml: the sequence, the GBCS alert code (N54 only) and the DCC alert code."""
    parts = [f"{alert['seq']:03d}"]
    if alert.get("code"):
        parts.append(alert["code"])
    parts.append(alert["kind"])
    return "-".join(parts) + ".xml"


def write_documents(rendered: list[dict], folder: Path) -> list[Path]:
    """Each alert's DUIS document as a file in folder (made if needed); the files written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for a in rendered:
            path = folder / document_name(a)
            path.write_text(a["xml"] + "\n", encoding="utf-8")
            a["file"] = str(path)
            files.append(path)
    except OSError as e:
        raise DemoError(f"cannot write the DUIS documents to {folder}: {e}") from e
    return files


def check_documents(
    rendered: list[dict], explicit: str | None, say: Callable[[str], None] = lambda text: None
) -> tuple[Path | None, list[str]]:
    """The schema folder used (None if none is found) and the errors of the documents."""
    from host_tools.duis.errors import DuisConfigError
    from host_tools.duis.schema import schema_dir, validate

    try:
        folder = schema_dir(explicit)
        invalid = []
        for a in rendered:
            errors = validate(a["xml"], folder)
            a["valid"] = not errors
            if errors:
                invalid.append(f"{document_name(a)}: {errors[0]}")
    except (DuisConfigError, OSError) as e:
        if explicit:
            raise DemoError(str(e)) from e
        say(f"   DUIS documents not checked: {e}")
        return None, []
    return folder, invalid


# -- the steps ---------------------------------------------------------------------------------


def flash_agent(port: str, path: str, say: Callable[[str], None]) -> None:
    """Flash the agent (what changed) with the development signing key; on a virtual board, as
    the demo's hub (DEMO_EUI)."""
    from agent.eui import parse_eui
    from host_tools.firmware import flash

    say(f"== flash the agent to {port} ({path})")
    is_vboard = port == "vboard" or port.startswith("vboard:")
    eui = parse_eui(DEMO_EUI) if is_vboard else None
    res = flash.flash(path, "unix", eui=eui, signing_key=sign.public_point(signing_key()))
    say(
        f"   {len(res.written)} file(s) written, {res.unchanged} unchanged; agent {res.hello['version']} on {res.hello['eui']}"
    )


def signing_key():
    """The development PKI's firmware signing key, made on first use."""
    from host_tools.security.pki import Pki

    pki = Pki()
    if not (pki.signing_dir / "key.pem").exists():
        pki.make_signing_key()
    return pki.signing_key()


def upgrade(agent: Agent, running: str, say: Callable[[str], None]) -> tuple[list[Arrival], bytes]:
    """Build, sign and stage the agent as a new version, activate it by its FirmwareHash, and
    wait for the board to come back on it and report N64. The events seen on the way, and the
    FirmwareHash."""
    version = running[:-1] if running.endswith("d") else running[:7] + "d"
    say(f"== stage and activate firmware {version} (signed; activated by its FirmwareHash)")
    data = sign.sign_image(image_build.build_content("unix", version), signing_key())
    staged = stage.send(agent.client, data)
    digest = staged["hash"]
    say(f"   staged {len(data)} bytes; FirmwareHash {digest.hex().upper()}")
    r = agent.request("fw.activate", {"hash": digest, "execution": None})
    if not r.ok:
        raise DemoError(f"activation refused: {r.rc} {r.err}")
    events: list[Arrival] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            hello = agent.client.request("hello", {"events": True}, timeout=1.0)
        except LinkError:
            continue  # still rebooting
        events += take(agent, 0.5, "activation")
        if any(a.ev.kind == "N64" for a in events):
            say(f"   the board came back on {hello.data['version']} and reported N64")
            return events, digest
        time.sleep(0.5)
    raise DemoError("the board did not report N64 within 30 s of the activation")


def take(agent: Agent, seconds: float, during: str) -> list[Arrival]:
    """Events that arrive within seconds, each acknowledged once kept, dated when the device
    raised them (or, undated, when they arrived)."""
    from host_tools.duis.alerts import event_time

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return [Arrival(ev, event_time(ev.data) or now, during) for ev in agent.receive(seconds)]
