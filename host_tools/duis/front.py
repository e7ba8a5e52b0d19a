"""`dbch duis REQUEST.xml`: answer a DUIS request as the DCC Data Systems would toward this hub.

The request is validated against the DUIS 5.4 schema (the user's own copy: --schema DIR or
DBCH_DUIS_SCHEMA_DIR), checked as the DCC checks it (E11, E12, E13, E19, E48, E49, E55), and
forwarded to the agent when it passes; the DUIS Response XML is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host_tools.cli import CommandError, add_json_flag
from host_tools.cli.options import add_port_args, open_client
from host_tools.duis import messages as duis
from host_tools.link.agent import SeenStore, checked
from host_tools.paths import cache_dir

# SRV -> (agent operation, how the agent's answer is rendered)
FORWARD = {
    "6.28": ("config.set", duis.ACK),
    "6.29": ("scan", duis.ACK),
    "6.30": ("config.get", duis.CONFIG),
    "6.31": ("channel", duis.CHANNEL),
    "11.3": ("fw.activate", duis.ACK),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "duis",
        help="answer a DUIS request (6.28-6.31, 11.3) toward the hub and print the DUIS response",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("request", help="a DUIS request XML file (- for standard input)")
    p.add_argument("--schema", help=f"folder of the DUIS 5.4 schema (default: ${duis.ENV_SCHEMA_DIR})")
    p.add_argument("--out", help="also write the response XML to this file")
    p.add_argument(
        "--forget-request-ids",
        action="store_true",
        help="forget the Request IDs seen for this hub first (otherwise a reused one is answered E55)",
    )
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_duis)


def _request_ids(eui: str) -> SeenStore:
    """The Request IDs this host has seen for the hub `eui`."""
    return SeenStore(cache_dir("duis-requests") / (eui.replace("-", "") + ".json"))


def answer(client, xml: bytes, schema: str | None, forget: bool = False) -> tuple[str, bytes, list[str]]:
    """(response code, DUIS response XML, warnings) for one request, forwarding it if it passes."""
    try:
        folder = duis.schema_dir(schema)
        req = duis.read_request(xml, folder)
    except duis.DuisConfigError as e:
        raise CommandError(str(e)) from e
    except duis.DuisError as e:
        raise CommandError(f"not a valid DUIS 5.4 request: {e}") from e
    warnings = list(req.warnings)
    hello = checked(client, "hello")
    eui = hello.data["eui"]
    seen = _request_ids(eui)
    if forget:
        seen.items = set()
    code, message = duis.check_request(req, target_eui=eui, seen_request_ids=seen.items)
    if code is not None:
        warnings.append(message)
        return code, duis.render_response(req, code), warnings
    seen.save()
    op, kind = FORWARD[req.service_reference_variant]
    args = req.args
    if op == "config.set":
        args = {"config": req.args}
    elif op == "fw.activate":
        args = {"hash": req.args["hash"], "execution": req.args.get("execution")}
    r = checked(client, op, args)
    if not r.ok:
        if r.err:
            warnings.append(f"{r.rc}: {r.err}")
        return r.rc, duis.render_response(req, r.rc), warnings
    if kind == duis.CONFIG and r.data is None:
        warnings.append("the hub holds no Sub GHz Configuration yet")
        return r.rc, duis.render_response(req, r.rc, duis.ACK), warnings
    return r.rc, duis.render_response(req, r.rc, kind if kind != duis.ACK else None, r.data), warnings


def cmd_duis(args: argparse.Namespace) -> int:
    try:
        xml = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read {args.request}: {e}") from e
    client = open_client(args)
    rc, out, warnings = answer(client, xml, args.schema, args.forget_request_ids)
    if args.out:
        Path(args.out).write_bytes(out)
    if args.json:
        print(json.dumps({"rc": rc, "warnings": warnings, "xml": out.decode()}, indent=2))
    else:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        sys.stdout.write(out.decode())
        if not out.endswith(b"\n"):
            print()
    return 0 if rc.startswith("I") else 1
