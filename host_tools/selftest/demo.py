"""`dbch demo`: the main job on the default virtual board, end to end.

Flashes the agent (only what changed), applies a Sub GHz Configuration like the DCC's DBCH04
example, pushes radio traffic until the duty-cycle alerts appear, stages and activates a signed
firmware image (the board reboots into it and reports N64), then prints a short report: the
configuration applied, one row per upward alert, the firmware activation and a summary. The
alerts are also DCC alerts in DUIS XML (--format duis, --out DIR), checked against the DCC's DUIS
schema when one is found (--schema DIR, else as `dbch duis` finds it). Safe to run again: each run starts an hour of virtual
time later, so the previous run's traffic has aged out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.examples import DBCH04_CONFIG
from host_tools.cli import CommandError, add_json_flag
from host_tools.cli.options import add_port_args, open_client
from host_tools.firmware import images as firmware
from host_tools.link.agent import checked
from host_tools.link.client import Event, LinkError
from host_tools.link.ports import resolve

DEMO_CONFIG = DBCH04_CONFIG
DEMO_REGION = "North"
DEMO_EUI = "00-DB-12-34-56-78-90-A2"
METER = "00-00-00-00-00-00-00-01"
HOUR_MS = 3600 * 1000
DUIS_KINDS = ("N54", "N64")  # the upward events that are DCC alerts, with a DUIS document each


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="flash the virtual board, configure it, drive it into duty-cycle alerts, activate firmware, report",
        description=__doc__,
    )
    add_port_args(p)
    p.add_argument(
        "--no-flash", action="store_true", help="use the agent already on the board (and no firmware update)"
    )
    p.add_argument(
        "--format",
        choices=("table", "duis"),
        default="table",
        help="stdout: a short report (table, the default) or the alerts as DUIS XML documents (duis)",
    )
    p.add_argument("--out", metavar="DIR", help="also write each alert's DUIS document to DIR, e.g. 003-8F20-N54.xml")
    p.add_argument(
        "--schema",
        metavar="DIR",
        help="DUIS schema folder to check the documents against (default: as `dbch duis` finds one)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


@dataclass
class Arrival:
    """An upward event, when the host received it and during which step of the demo."""

    ev: Event
    when: dt.datetime
    during: str


def _step(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from host_tools.duis import messages as duis

    t0 = time.monotonic()
    port = resolve(args.port, start=True)  # the demo starts its virtual board itself
    if not args.no_flash:
        from host_tools.firmware import flash

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
    seen = take(client, 0.2, "clock +1 h")  # what earlier runs left, and the hour that just passed

    _step("apply the Sub GHz Configuration (DBCH04 example)")
    r = checked(client, "config.set", {"config": DEMO_CONFIG, "region": DEMO_REGION})
    if not r.ok:
        raise CommandError(f"configuration refused: {r.rc} {r.err}")
    config_rc = r.rc
    print(f"   {r.rc}: applied", file=sys.stderr)
    seen += take(client, 0.2, "configuration")

    _step("push traffic from a meter and the hub until the duty-cycle alerts appear")
    minute = 0
    state = None
    while minute < 90 and state != "regulated":
        for device in (METER, None):
            req = {"count": 300, "len": 125, "essential": device is None}
            if device:
                req["device"] = device
            state = checked(client, "send", req, timeout=30).data["duty"]
        checked(client, "clock.advance", {"ms": 60000})
        minute += 1
        seen += take(client, 0.02, f"traffic min {minute}")
    seen += take(client, 1.0, f"traffic min {minute}")
    status = checked(client, "status").data
    duty = status["duty"]
    print(
        f"   {minute} virtual minutes of traffic; duty cycle now {duty['state']} at {duty['permille'] / 10:.1f} %",
        file=sys.stderr,
    )
    fw = None
    if not args.no_flash:
        running = status["version"]
        events, digest = upgrade(client, running)
        seen += events
        status = checked(client, "status").data
        duty = status["duty"]
        fw = {"from": running, "to": status["version"], "hash": digest.hex().upper()}

    _step(f"the upward alerts as DUIS XML ({len(seen)}), checked against the schema")
    rendered = []
    for a in seen:
        if a.ev.kind in DUIS_KINDS:
            xml = duis.render_alert(a.ev.kind, a.ev.data, when=a.when).decode()
            code = a.ev.data.get("DeviceAlertCode")
            rendered.append(
                {
                    "seq": a.ev.seq,
                    "kind": a.ev.kind,
                    "code": code,
                    "rc": a.ev.data.get("rc"),
                    "name": alert_name(a.ev),
                    "when": duis.utc_text(a.when),
                    "during": a.during,
                    "xml": xml,
                }
            )
    files = write_documents(rendered, Path(args.out)) if args.out else []
    schema, invalid = check_documents(rendered, args.schema)
    seconds = time.monotonic() - t0

    if args.json:
        import json

        print(status_line(status), file=sys.stderr)
        print(
            json.dumps(
                {
                    "status": status,
                    "config": {"rc": config_rc, "region": DEMO_REGION, "config": DEMO_CONFIG, "masks": status["masks"]},
                    "alerts": rendered,
                    "firmware": fw,
                    "traffic_minutes": minute,
                    "schema": str(schema) if schema else None,
                    "seconds": round(seconds, 1),
                },
                indent=2,
            )
        )
    elif args.format == "duis":
        print(status_line(status), file=sys.stderr)
        for a in rendered:
            print(a["xml"])
    else:
        print(report(status, config_rc, seen, fw, minute, schema, invalid, args.port, args.out, files, seconds))
    if files and args.format == "duis":
        print(files_note(args.out, files), file=sys.stderr)
    _step(f"done in {seconds:.1f} s")
    if invalid:
        raise CommandError(
            f"{len(invalid)} DUIS document(s) not valid against the schema in {schema}: " + "; ".join(invalid[:5])
        )
    return 0


# -- what is shown -----------------------------------------------------------------------------


def alert_name(ev: Event) -> str:
    """A row's description: the GBCS alert's name (N54) or the DCC alert's, and what it names."""
    from agent import dcc_tables

    d = ev.data
    if ev.kind == "N54":
        name = dcc_tables.GBCS_ALERTS.get(int(d["DeviceAlertCode"], 16), ("?",))[0]
        p = d.get("payload")
        if isinstance(p, dict) and p.get("DeviceIDToSuspend"):
            name += f": suspends {p['DeviceIDToSuspend']}"
        elif isinstance(p, dict) and "page" in p and "channel" in p:
            name += f": page {p['page']} ch {p['channel']}"
        return name
    if ev.kind == "N64":
        return f"{dcc_tables.DCC_ALERTS['N64'][0]}: now runs {d.get('FirmwareVersion')}"
    text = str(d)
    return text if len(text) <= 60 else text[:57] + "..."


def status_line(status: dict) -> str:
    ch, duty = status["channel"], status["duty"]
    return (
        f"device {status['eui']} ({status['board']}, {status['band']} MHz), agent {status['version']}, "
        f"masks {' '.join(status['masks'])}, channel page {ch['page']} ch {ch['channel']}, "
        f"duty {duty['state']} {duty['permille'] / 10:.1f} %, outbox {status['outbox']}"
    )


def config_lines(rc: str, masks: list[str]) -> list[str]:
    """The configuration applied, in three lines: its response code, the masks, the limits."""
    from agent import dcc_tables, subghz

    cfg = DEMO_CONFIG
    pages = "  ".join(
        f"{page}:{mask} (ch {','.join(str(c) for c in cfg[name])})"
        for (name, page), mask in zip(subghz.CHANNEL_ITEMS, masks)
    )
    return [
        f"configuration  {rc} {dcc_tables.response_name(rc) or ''}: the DBCH04 example, region {DEMO_REGION}",
        f"  page:mask    {pages}",
        f"  limits       duty cycle limited at {cfg['NormalLimitedDutyCycleThreshold']} %, "
        f"critical at {cfg['LimitedCriticalDutyCycleThreshold']} % of the hour; "
        f"at most {cfg['MaximumSubGHzChannelChangesPerWeek']} channel changes a week",
    ]


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Plain text columns, each as wide as its widest cell (the last one not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def report(
    status: dict,
    config_rc: str,
    seen: list[Arrival],
    fw: dict | None,
    minutes: int,
    schema: Path | None,
    invalid: list[str],
    port: str,
    out: str | None,
    files: list[Path],
    seconds: float,
) -> str:
    """The default output: what a person reads after the run."""
    lines = [f"device {status['eui']} ({status['board']}, {status['band']} MHz) on {port}", ""]
    lines += config_lines(config_rc, status["masks"])
    lines.append("")
    rows = [("seq", "GBCS", "DCC", "DUIS", "when (UTC)", "during", "alert")]
    for a in seen:
        d = a.ev.data
        gbcs = f"0x{d['DeviceAlertCode']}" if a.ev.kind == "N54" else "-"
        rc = d.get("rc", "-") if a.ev.kind in DUIS_KINDS else "-"
        when = a.when.strftime("%H:%M:%S")
        rows.append((f"{a.ev.seq:>3}", gbcs, a.ev.kind, rc, when, a.during, alert_name(a.ev)))
    lines += columns(rows) if seen else ["no upward alerts"]
    lines.append("")
    if fw:
        n64 = [a for a in seen if a.ev.kind == "N64"]
        lines.append(
            f"firmware       {fw['from']} -> {fw['to']}, activated by FirmwareHash {fw['hash'][:8]}...{fw['hash'][-8:]}; "
            + (f"N64 {n64[-1].ev.data.get('rc', 'I0')} (seq {n64[-1].ev.seq})" if n64 else "no N64")
        )
    else:
        lines.append("firmware       not updated (--no-flash)")
    ch, duty = status["channel"], status["duty"]
    lines.append(
        f"status         agent {status['version']}, duty cycle {duty['state']} at {duty['permille'] / 10:.1f} %, "
        f"channel page {ch['page']} ch {ch['channel']}, outbox {status['outbox']}"
    )
    if out:
        lines.append(files_note(out, files))
    kinds = [a.ev.kind for a in seen if a.ev.kind in DUIS_KINDS]
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in DUIS_KINDS if k in kinds)
    if schema is None:
        checked_text = "DUIS not checked (no schema)"
    elif invalid:
        checked_text = f"{len(invalid)} DUIS document(s) NOT valid"
    else:
        checked_text = f"DUIS valid against the DUIS {schema_version(schema)} schema"
    lines += [
        "",
        f"{len(kinds)} alerts ({counts}) in {minutes} virtual minutes of traffic; {checked_text}; took {seconds:.1f} s",
    ]
    return "\n".join(lines)


def files_note(out: str, files: list[Path]) -> str:
    names = [f.name for f in files]
    text = f"DUIS files     {len(names)} in {out}:"
    lines, line = [], text
    for n in names:
        if len(line) + 1 + len(n) > 100:
            lines.append(line)
            line = " " * 14
        line += " " + n
    return "\n".join([*lines, line])


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
        raise CommandError(f"cannot write the DUIS documents to {folder}: {e}") from e
    return files


def schema_version(folder: Path) -> str:
    """The DUIS version of the schema a folder holds ("DUIS Schema V5.4.xsd" -> "5.4"), the
    highest if it holds several."""
    versions = [p.stem.rpartition("V")[2] for p in folder.glob("DUIS Schema V*.xsd")]
    return max(versions, key=lambda v: [int(n) for n in v.split(".") if n.isdigit()], default="?")


def check_documents(rendered: list[dict], explicit: str | None) -> tuple[Path | None, list[str]]:
    """The schema folder used (None if none is found) and the errors of the documents."""
    from host_tools.duis import messages as duis

    try:
        folder = duis.schema_dir(explicit)
        invalid = []
        for a in rendered:
            errors = duis.validate(a["xml"], folder)
            a["valid"] = not errors
            if errors:
                invalid.append(f"{document_name(a)}: {errors[0]}")
    except (duis.DuisConfigError, OSError) as e:
        if explicit:
            raise CommandError(str(e)) from e
        print(f"   DUIS documents not checked: {e}", file=sys.stderr)
        return None, []
    return folder, invalid


# -- the steps ---------------------------------------------------------------------------------


def signing_key():
    """The development PKI's firmware signing key, made on first use."""
    from host_tools.security.pki import Pki

    pki = Pki()
    if not (pki.signing_dir / "key.pem").exists():
        pki.make_signing_key()
    return pki.signing_key()


def upgrade(client, running: str) -> tuple[list[Arrival], bytes]:
    """Build, sign and stage the agent as a new version, activate it by its FirmwareHash, and
    wait for the board to come back on it and report N64. The events seen on the way, and the
    FirmwareHash."""
    version = running[:-1] if running.endswith("d") else running[:7] + "d"
    _step(f"stage and activate firmware {version} (signed; activated by its FirmwareHash)")
    data = firmware.sign_image(firmware.build_content("unix", version), signing_key())
    staged = firmware.send(client, data)
    digest = staged["hash"]
    print(f"   staged {len(data)} bytes; FirmwareHash {digest.hex().upper()}", file=sys.stderr)
    r = checked(client, "fw.activate", {"hash": digest, "execution": None})
    if not r.ok:
        raise CommandError(f"activation refused: {r.rc} {r.err}")
    events: list[Arrival] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            hello = client.request("hello", {"events": True}, timeout=1.0)
        except LinkError:
            continue  # still rebooting
        events += take(client, 0.5, "activation")
        if any(a.ev.kind == "N64" for a in events):
            print(f"   the board came back on {hello.data['version']} and reported N64", file=sys.stderr)
            return events, digest
        time.sleep(0.5)
    raise CommandError("the board did not report N64 within 30 s of the activation")


def take(client, seconds: float, during: str) -> list[Arrival]:
    """Events that arrive within seconds, each acknowledged once kept."""
    out = []
    for ev in client.poll_events(seconds):
        out.append(Arrival(ev, dt.datetime.now(dt.timezone.utc).replace(microsecond=0), during))
        client.seen.add(ev.seq)
        client.ack(ev.seq)
    return out


def flash_eui(is_vboard: bool) -> bytes | None:
    from agent.eui import parse_eui

    return parse_eui(DEMO_EUI) if is_vboard else None
