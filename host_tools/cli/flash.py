"""`dbch flash` (compile the agent and flash it to a board) and `dbch mpremote` (run mpremote on a
board while its agent hands the line over)."""

from __future__ import annotations

import argparse
import sys

from host_tools.cli.options import add_port_args, ports_of
from host_tools.cli.output import CommandError, add_json_flag, emit, say
from host_tools.firmware import flash, many
from host_tools.firmware.handover import hand_over, take_back
from host_tools.firmware.sign import load_signing_public
from host_tools.link.ports import resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash",
        help="compile the agent and flash it to a board, or to several at once (default: the virtual board)",
        description=flash.__doc__ + "\n" + many.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_port_args(p, many=True)
    p.add_argument("--board", help="board module (default: unix for a virtual board, else required)")
    p.add_argument(
        "--eui", help="set a virtual board's EUI-64, e.g. 00-DB-12-34-56-78-90-A2 (real boards use their own)"
    )
    p.add_argument(
        "--signing-key",
        metavar="PUB",
        help="the firmware signing public key to trust (pub.bin, pub.pem, pub.der or hex; "
        "default: the development PKI's, if any)",
    )
    p.add_argument("--fw-version", metavar="V", help="firmware version slot A reports (default: the build's)")
    p.add_argument(
        "--debug",
        action="store_true",
        help="keep the line numbers in the compiled modules (tracebacks on the board name the line; a larger image, slower to flash)",
    )
    p.add_argument(
        "--layout",
        choices=flash.LAYOUTS,
        default="auto",
        help="slot A as one ROMFS image imported in place (romfs) or as .mpy files (mpy); auto (the default): "
        "ROMFS on a virtual board whose MicroPython has vfs.VfsRom, .mpy files elsewhere",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_flash)
    register_mpremote(sub)


def register_mpremote(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mpremote",
        help="run mpremote on a board while its agent hands the line over, then start the agent again",
        description="Run `mpremote connect PORT ARGS...` on a board whose agent owns the serial line: the "
        "agent is asked to hand the line over first (noise on the line, Ctrl-C included, cannot do that), "
        "and it is started again afterwards, whatever mpremote left the board at. Example: "
        "dbch mpremote -- fs ls :slots/a",
    )
    add_port_args(p)
    p.add_argument("--keep", action="store_true", help="leave the board at its REPL afterwards (no agent)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS", help="mpremote's command and arguments")
    add_json_flag(p)
    p.set_defaults(func=cmd_mpremote)


def cmd_mpremote(args: argparse.Namespace) -> int:
    import subprocess

    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else list(args.argv)
    if not argv:
        raise CommandError("give mpremote's command: dbch mpremote -- exec 'print(1)' (see mpremote --help)")
    if args.port == "sim" or args.port.startswith(("sim:", "triage")):
        raise CommandError("mpremote needs a MicroPython board: a real board's port or a virtual board (vboard)")
    port = resolve(args.port)
    handed = hand_over(port, baud=args.baud)
    done = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *argv],
        capture_output=args.json,
        text=True,
    )
    hello = None
    if not args.keep:
        hello = take_back(port, baud=args.baud, timeout=max(args.timeout, 20.0))
    result = {"mpremote": argv, "rc": done.returncode, "handed_over": handed, "agent": hello}
    if args.json:
        result["stdout"], result["stderr"] = done.stdout, done.stderr
        emit(args, result)
    elif hello:
        print(f"dbch: agent running again (boot #{hello.get('boot')})", file=sys.stderr)
    else:
        print("dbch: the board is left at its REPL (--keep): dbch status starts its agent again", file=sys.stderr)
    return done.returncode


def cmd_flash(args: argparse.Namespace) -> int:
    ports = ports_of(args)
    for spec in ports:
        if spec == "sim" or spec.startswith("sim:"):
            raise CommandError("the CPython agent (--port sim) runs this checkout's code: there is nothing to flash")
    is_vboard = all(spec == "vboard" or spec.startswith("vboard:") for spec in ports)
    board = args.board or ("unix" if is_vboard else None)
    if board is None:
        raise CommandError("--board is required for a real board (e.g. --board heltec_wifi_lora32_v3)")
    eui = None
    if args.eui:
        from agent.eui import parse_eui

        if board != "unix":
            raise CommandError("--eui is for virtual boards: a real board's EUI-64 comes from its hardware")
        if len(ports) > 1:
            raise CommandError("--eui sets one board's identity: give one --port with it")
        try:
            eui = parse_eui(args.eui)
        except ValueError as e:
            raise CommandError(f"--eui: {e}") from e
    key = load_signing_public(args.signing_key)
    if args.fw_version is not None:
        from agent.fw_image import ImageError, check_version

        try:
            check_version(args.fw_version)
        except ImageError as e:
            raise CommandError(f"--fw-version: {e}") from e
    if len(ports) > 1:
        return _flash_many(args, ports, board, key)
    port = resolve(ports[0])
    res = flash.flash(
        port,
        board,
        baud=args.baud,
        progress=None if args.json else say,
        timeout=max(args.timeout, 20.0),
        eui=eui,
        signing_key=key,
        version=args.fw_version,
        debug=args.debug,
        layout=args.layout,
    )
    h = res.hello or {}
    text = (
        _flashed(board, ports[0], res) + "\n"
        f"agent {h.get('version')} running: device {h.get('eui')}, board {h.get('board')}, {h.get('band')} MHz, boot #{h.get('boot')}"
    )
    if not res.signing_key:
        text += "\nno firmware signing key on the board: firmware updates are refused (dbch flash --signing-key PUB)"
    emit(args, res.__dict__, text)
    return 0


def _flashed(board: str, port: str, res: flash.FlashResult) -> str:
    """What a flash did, on one line."""
    return (
        f"flashed {board} on {port}: {len(res.written)} written ({res.bytes_written} bytes), "
        f"{res.unchanged} unchanged, {len(res.removed)} removed in {res.seconds:.1f} s"
        + (" (slot A as a ROMFS image)" if res.layout == "romfs" else "")
    )


def _flash_many(args: argparse.Namespace, ports: list[str], board: str, key: bytes | None) -> int:
    """Several boards at once (host_tools.firmware.many): progress per board on stderr, or with
    --json one JSON event a line on stdout; the exit status is 1 unless every board succeeded."""
    import json

    from host_tools.cli import _explanation
    from host_tools.cli.board_lines import BoardLines
    from host_tools.errors import DbchError

    targets: list[tuple[str, str | BaseException]] = []
    devices: dict[str, str] = {}
    for spec in ports:
        try:
            device = resolve(spec)
        except DbchError as e:  # that board fails; the others are flashed
            targets.append((str(spec), e))
            continue
        if device in devices:
            raise CommandError(f"--port {spec} and --port {devices[device]} are the same board ({device})")
        devices[device] = str(spec)
        targets.append((str(spec), device))
    if args.json:

        def on_event(ev: dict) -> None:
            print(json.dumps(ev, sort_keys=True, default=str), flush=True)

    else:
        on_event = BoardLines([p for p, _ in targets])
    outcomes = many.flash_many(
        targets,
        board,
        baud=args.baud,
        timeout=max(args.timeout, 20.0),
        signing_key=key,
        version=args.fw_version,
        on_event=on_event,
        debug=args.debug,
        layout=args.layout,
    )
    failed = [o for o in outcomes if not o.ok]
    if not args.json:
        for o in outcomes:
            if o.ok:
                r, h = o.result, o.result.hello or {}
                agent = f"agent {h.get('version')} running: device {h.get('eui')}, boot #{h.get('boot')}"
                print(f"{_flashed(board, o.port, r)}; {agent}")
        if any(o.ok and not o.result.signing_key for o in outcomes):
            print("no firmware signing key on some boards: firmware updates are refused (dbch flash --signing-key PUB)")
    if failed:
        lines = [f"{len(failed)} of {len(outcomes)} boards failed:"]
        for o in failed:
            why = _explanation(o.exception) if o.exception is not None else ""
            lines.append(f"  {o.port}: {o.error}" + ("\n    " + why.replace("\n", "\n    ") if why else ""))
        print("dbch: " + "\n".join(lines), file=sys.stderr)
        return 1
    return 0
