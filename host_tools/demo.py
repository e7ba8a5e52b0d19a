"""`dbch demo`: the main job on the default virtual board, end to end.

Flashes the agent (only what changed), applies a Sub GHz Configuration like the DCC's DBCH04
example, pushes radio traffic until the duty-cycle alerts appear, stages and activates a signed
firmware image (the board reboots into it and reports N64), then prints the hub's status and
the upward alerts as DUIS XML. Safe to run again: each run starts an hour of virtual time
later, so the previous run's traffic has aged out.
"""

from __future__ import annotations

import argparse
import sys
import time

from agent.examples import DBCH04_CONFIG
from host_tools import firmware
from host_tools.cli import CommandError, add_json_flag
from host_tools.client import LinkError
from host_tools.connect import add_port_args, checked, open_client, resolve

DEMO_CONFIG = DBCH04_CONFIG
DEMO_EUI = "00-DB-12-34-56-78-90-A2"
METER = "00-00-00-00-00-00-00-01"
HOUR_MS = 3600 * 1000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="flash the virtual board, configure it, drive it into duty-cycle alerts, show DUIS XML",
        description=__doc__,
    )
    add_port_args(p)
    p.add_argument("--no-flash", action="store_true", help="use the agent already on the board")
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def _step(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from host_tools import duis, flash

    t0 = time.monotonic()
    port = resolve(args.port)
    if not args.no_flash:
        _step(f"flash the agent to {args.port} ({port})")
        is_vboard = args.port == "vboard" or args.port.startswith("vboard:")
        res = flash.flash(
            port, "unix", quiet=True, eui=flash_eui(is_vboard), signing_key=firmware.public_point(signing_key())
        )
        print(
            f"   {len(res.written)} file(s) written, {res.unchanged} unchanged; agent {res.hello['version']} on {res.hello['eui']}",
            file=sys.stderr,
        )
    client = open_client(args)
    if not checked(client, "hello", {"events": True}).ok:
        raise CommandError("the agent did not say hello")
    # a fresh hour: the previous run's traffic ages out of the duty-cycle window
    checked(client, "clock.advance", {"ms": HOUR_MS + 120000})

    _step("apply the Sub GHz Configuration (DBCH04 example)")
    r = checked(client, "config.set", {"config": DEMO_CONFIG, "region": "North"})
    if not r.ok:
        raise CommandError(f"configuration refused: {r.rc} {r.err}")
    print(f"   {r.rc}: applied", file=sys.stderr)

    _step("push traffic from a meter and the hub until the duty-cycle alerts appear")
    seen: list = take(client, 0.2)  # what earlier runs left, and the hour that just passed
    minute = 0
    state = None
    while minute < 90 and state != "regulated":
        for device in (METER, None):
            a = {"count": 300, "len": 125, "essential": device is None}
            if device:
                a["device"] = device
            state = checked(client, "send", a, timeout=30).data["duty"]
        checked(client, "clock.advance", {"ms": 60000})
        minute += 1
        seen += take(client, 0.02)
    seen += take(client, 1.0)
    status = checked(client, "status").data
    duty = status["duty"]
    print(
        f"   {minute} virtual minutes of traffic; duty cycle now {duty['state']} at {duty['permille'] / 10:.1f} %",
        file=sys.stderr,
    )
    if not args.no_flash:
        seen += upgrade(client, status["version"])
        status = checked(client, "status").data
        duty = status["duty"]

    _step("status")
    ch = status["channel"]
    line = (
        f"device {status['eui']} ({status['board']}, {status['band']} MHz), agent {status['version']}, "
        f"masks {' '.join(status['masks'])}, channel page {ch['page']} ch {ch['channel']}, "
        f"duty {duty['state']} {duty['permille'] / 10:.1f} %, outbox {status['outbox']}"
    )
    print(line, file=sys.stderr if args.json else sys.stdout)
    _step(f"upward alerts as DUIS XML ({len(seen)})")
    rendered = []
    for ev in seen:
        if ev.kind in ("N54", "N64"):
            xml = duis.render_alert(ev.kind, ev.data).decode()
            rendered.append({"seq": ev.seq, "kind": ev.kind, "code": ev.data.get("DeviceAlertCode"), "xml": xml})
            if not args.json:
                print(xml)
    if args.json:
        import json

        print(json.dumps({"status": status, "alerts": rendered}, indent=2))
    _step(f"done in {time.monotonic() - t0:.1f} s")
    return 0


def signing_key():
    """The development PKI's firmware signing key, made on first use."""
    from host_tools.pki import Pki

    pki = Pki()
    if not (pki.signing_dir / "key.pem").exists():
        pki.make_signing_key()
    return pki.signing_key()


def upgrade(client, running: str) -> list:
    """Build, sign and stage the agent as a new version, activate it by its FirmwareHash, and
    wait for the board to come back on it and report N64. The events seen on the way."""
    version = running[:-1] if running.endswith("d") else running[:7] + "d"
    _step(f"stage and activate firmware {version} (signed; activated by its FirmwareHash)")
    data = firmware.sign_image(firmware.build_content("unix", version), signing_key())
    staged = firmware.send(client, data)
    digest = staged["hash"]
    print(f"   staged {len(data)} bytes; FirmwareHash {digest.hex().upper()}", file=sys.stderr)
    r = checked(client, "fw.activate", {"hash": digest, "execution": None})
    if not r.ok:
        raise CommandError(f"activation refused: {r.rc} {r.err}")
    events: list = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            hello = client.request("hello", {"events": True}, timeout=1.0)
        except LinkError:
            continue  # still rebooting
        events += take(client, 0.5)
        if any(e.kind == "N64" for e in events):
            print(f"   the board came back on {hello.data['version']} and reported N64", file=sys.stderr)
            return events
        time.sleep(0.5)
    raise CommandError("the board did not report N64 within 30 s of the activation")


def take(client, seconds: float) -> list:
    """Events that arrive within seconds, each acknowledged once kept."""
    out = []
    for ev in client.poll_events(seconds):
        out.append(ev)
        client.seen.add(ev.seq)
        client.ack(ev.seq)
    return out


def flash_eui(is_vboard: bool) -> bytes | None:
    from agent.eui import parse_eui

    return parse_eui(DEMO_EUI) if is_vboard else None
