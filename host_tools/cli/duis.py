"""`dbch duis` (answer a DUIS request toward the hub) and `dbch schema fetch|show` (the DCC's DUIS
schema and templates): the command line of host_tools.duis."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from host_tools.cli.options import add_port_args, open_client
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.duis import assets
from host_tools.duis.front import serve_device
from host_tools.duis.schema import ENV_SCHEMA_DIR, describe

DUIS_DESCRIPTION = """\
`dbch duis REQUEST.xml`: answer a DUIS request as the DCC Data Systems would toward this hub.

The request is validated against the DUIS 5.4 schema (the user's own copy: --schema DIR or
DBCH_DUIS_SCHEMA_DIR), checked as the DCC checks it (E11, E12, E13, E19, E48, E49, E55), and
forwarded to the agent when it passes. Printed: the DCC's synchronous answer (the Acknowledgement
I99, or the error response), then the Service Response made of the board's answer, each an
sr:Response valid against the schema. Services: 6.28-6.32, 11.2, 11.3 (immediate, future dated,
cancel). Exit status 0 when the last document is a success (I0, I99).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "duis",
        help="answer a DUIS request (6.28-6.32, 11.2, 11.3) toward the hub and print the DUIS responses",
        description=DUIS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("request", help="a DUIS request XML file (- for standard input)")
    p.add_argument("--schema", help=f"folder of the DUIS 5.4 schema (default: ${ENV_SCHEMA_DIR})")
    p.add_argument("--out", help="also write the last response XML (the Service Response) to this file")
    add_port_args(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_duis)

    top = sub.add_parser(
        "schema",
        help="the DUIS schema and DCC templates: fetch them from npm packages, show where they are",
        description=assets.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])
    actions = top.add_subparsers(dest="schema_command", metavar="ACTION")
    p = actions.add_parser("fetch", help="fetch the DUIS schema and DCC templates with npm into the user cache (once)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_json_flag(p)
    p.set_defaults(func=cmd_schema_fetch)
    p = actions.add_parser("show", help="where the DUIS schema in use and the fetched copies are, and their versions")
    p.add_argument("--schema", help="a schema folder to check (default: $DBCH_DUIS_SCHEMA_DIR, else the fetched copy)")
    add_json_flag(p)
    p.set_defaults(func=cmd_schema_show)


def cmd_duis(args: argparse.Namespace) -> int:
    try:
        xml = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read {args.request}: {e}") from e
    client = open_client(args)
    ex = serve_device(client, xml, schema=args.schema)
    rc, out = ex.final
    documents = [ex.sync, *ex.responses]
    if args.out:
        Path(args.out).write_bytes(out)
    if args.json:
        print(
            json.dumps(
                {
                    "rc": rc,
                    "warnings": ex.warnings,
                    "xml": out.decode(),
                    "sync": {"rc": ex.code, "xml": ex.sync.decode()},
                    "responses": [{"rc": c, "xml": d.decode()} for c, d in zip(ex.response_codes, ex.responses)],
                },
                indent=2,
            )
        )
    else:
        for w in ex.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for d in documents:
            sys.stdout.write(d.decode())
            if not d.endswith(b"\n"):
                print()
    return 0 if rc.startswith("I") else 1


def cmd_schema_fetch(args: argparse.Namespace) -> int:
    fetched = assets.fetch(None if args.quiet or args.json else assets.note)
    emit(
        args,
        fetched.to_json(),
        "DUIS {} schema: {}\nDCC templates: {}".format(
            fetched.schema_version, fetched.schema_dir, fetched.templates_dir
        ),
    )
    return 0


def _show_text(info: dict) -> str:
    s, pkgs = info["schema"], info["packages"]
    lines = [
        "DUIS schema in use: {} (DUIS {}, from {})".format(s["dir"], s["version"], s["source"])
        if s["dir"]
        else "DUIS schema in use: none ({})".format(s["error"])
    ]
    for what, p in (("schema", pkgs["schema"]), ("templates", pkgs["templates"])):
        state = "fetched" if p["fetched"] else "not fetched (dbch schema fetch)"
        if what == "templates" and p["fetched"]:
            state += ", {} templates".format(p["count"])
        lines.append("{} package {} {}: {} - {}".format(what, p["package"], p["version"], p["dir"], state))
    return "\n".join(lines)


def cmd_schema_show(args: argparse.Namespace) -> int:
    info = describe(args.schema)
    emit(args, info, _show_text(info))
    return 0
