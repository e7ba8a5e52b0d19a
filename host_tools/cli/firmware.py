"""`dbch firmware`: build, sign, send and activate agent firmware images; check reported versions
against the Central Products List.

    dbch firmware build [--board B] [--radio R] [--version V] [--security-counter N] [--out FILE] [--key KEY]
    dbch firmware sign IMAGE [--key KEY] [--out FILE]
    dbch firmware info IMAGE [--pub PUB]
    dbch firmware send IMAGE [--port P] [--chunk N] [--permit FILE] [--plain | --window BITS] [--base FILE]
    dbch firmware status [--port P]
    dbch firmware activate HASH|IMAGE [--at ISO] [--permit FILE] | --cancel
    dbch firmware permit-rollback HASH|IMAGE --eui EUI [--key KEY] [--out FILE]
    dbch firmware cpl-check --cpl FILE --smi FILE [--port P | --reported EUI=VERSION ...]

Image format: agent/image.py. An image is its CONTENT (header with the CBOR manifest, then the
.mpy files) followed by a signature trailer. The FirmwareHash of DUIS 11.3 is SHA-256(CONTENT),
and the signature is ECDSA P-256 / SHA-256 over CONTENT, made with the manufacturer's key
(--key: a PEM or DER PKCS#8 private key; default: the development PKI's signing key, created by
`dbch pki signing-key`). The device trusts one public key, provisioned by `dbch flash`.

Anti-rollback: the manifest carries the image's security counter ("sec"; --security-counter,
default derived from the version: MAJOR.MINOR.PATCH, each 0-999, as MAJOR*10^6 + MINOR*10^3 +
PATCH, so 0.2.0 is 2000; a version that does not start with digits gives 0). A hub refuses an
image below its minimum (E5), which goes up to each image it confirms. To go back on purpose,
`permit-rollback` signs a permission for one hub (its EUI-64) and one image (its FirmwareHash)
with the same key; give it to `send` and `activate` with --permit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent import fw_image as image
from host_tools.cli.options import add_port_args, open_client
from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.files import write_file
from host_tools.firmware.build import board_radio
from host_tools.firmware.image_build import build_content
from host_tools.firmware.images import describe, keep_image, kept_image, parse_hash, read_image, read_permit, split
from host_tools.firmware.sign import load_private_key, load_signing_public, make_permit, sign_image, verify_image
from host_tools.firmware.stage import WBITS, FirmwareError, send
from host_tools.link.agent import checked


def register(sub: argparse._SubParsersAction) -> None:
    p = _documented(sub, "firmware", "build, sign, send and activate firmware images; CPL version check", __doc__)
    fsub = p.add_subparsers(
        dest="firmware_cmd",
        metavar="build|sign|info|send|status|activate|permit-rollback|cpl-check",
        required=True,
    )

    b = fsub.add_parser("build", help="compile the agent into a firmware image (and sign it with --key)")
    b.add_argument("--board", default="unix", help="board module (default: unix, the virtual board)")
    b.add_argument(
        "--radio",
        help="the virtual board's radio, as the radio record of the board it is for names it: sim (the "
        "default, no driver), sx1262, rfm69, stm32wl, or a board that carries one (heltec_wifi_lora32_v3, "
        "pico_rfm69, nucleo_wl55jc); the image carries that radio's driver and simulated chip only",
    )
    b.add_argument("--version", help="FirmwareVersion, 1-8 characters (default: the build's)")
    b.add_argument(
        "--security-counter",
        type=int,
        metavar="N",
        help="anti-rollback counter, 0-999999999 (default: from the version, 0.2.0 -> 2000)",
    )
    b.add_argument(
        "--out", help="image file (default: dbch-BOARD-VERSION.img; dbch-BOARD-RADIO-VERSION.img with --radio)"
    )
    b.add_argument("--key", help="sign with this private key (PEM/DER); without it the image is unsigned")
    b.add_argument("--sign", action="store_true", help="sign with the development PKI's signing key")
    b.add_argument(
        "--debug",
        action="store_true",
        help="keep the line numbers in the compiled modules (tracebacks on the board name the line; a larger image, slower to flash)",
    )
    add_json_flag(b)
    b.set_defaults(func=cmd_build)

    s = fsub.add_parser("sign", help="sign an image (replacing any signature)")
    s.add_argument("image")
    s.add_argument("--key", help="private key, PEM or DER (default: the development PKI's signing key)")
    s.add_argument("--out", help="signed image file (default: in place)")
    add_json_flag(s)
    s.set_defaults(func=cmd_sign)

    i = fsub.add_parser("info", help="show an image's manifest and FirmwareHash (and check it with --pub)")
    i.add_argument("image")
    i.add_argument("--pub", help="check the signature with this public key (pub.bin/pem/der or hex)")
    add_json_flag(i)
    i.set_defaults(func=cmd_info)

    s = fsub.add_parser("send", help="stage a signed image on the agent (resumable)")
    s.add_argument("image")
    s.add_argument("--chunk", type=int, help="bytes per request (default: what the agent takes)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.add_argument("--permit", metavar="FILE", help="a rollback permission for an image below the hub's minimum")
    s.add_argument(
        "--plain",
        action="store_true",
        help="send the image as it is (default: as one deflate stream, to a hub that takes it; plain to one that does not)",
    )
    s.add_argument(
        "--window",
        type=int,
        default=WBITS,
        metavar="BITS",
        help=f"the largest deflate window offered, 9-15 (log2 bytes; default {WBITS}); the hub may take less",
    )
    s.add_argument(
        "--base",
        metavar="FILE",
        help="the image the hub runs: the compressed stream refers to its modules (default: the images this host"
        " staged before, kept in dbch's cache, found by the hub's running FirmwareHash)",
    )
    add_port_args(s)
    add_json_flag(s)
    s.set_defaults(func=cmd_send)

    s = fsub.add_parser("status", help="the agent's firmware: running slot and version, staged images, activation")
    add_port_args(s)
    add_json_flag(s)
    s.set_defaults(func=cmd_status)

    a = fsub.add_parser("activate", help="activate a staged image by its FirmwareHash (now, --at a time, or --cancel)")
    a.add_argument("hash", nargs="?", help="FirmwareHash (64 hex digits) or the image file")
    a.add_argument("--at", metavar="ISO", help="activate at this UTC time, e.g. 2030-01-31T02:00:00Z")
    a.add_argument("--cancel", action="store_true", help="cancel the scheduled activation")
    a.add_argument("--permit", metavar="FILE", help="a rollback permission for an image below the hub's minimum")
    add_port_args(a)
    add_json_flag(a)
    a.set_defaults(func=cmd_activate)

    r = fsub.add_parser(
        "permit-rollback", help="sign a permission for one hub to take one image below its minimum security counter"
    )
    r.add_argument("hash", help="the image's FirmwareHash (64 hex digits) or the image file")
    r.add_argument("--eui", required=True, help="the hub's EUI-64, e.g. 00-DB-12-34-56-78-90-A2")
    r.add_argument("--key", help="private key, PEM or DER (default: the development PKI's signing key)")
    r.add_argument("--out", help="permission file (default: rollback-EUI-HASH8.permit)")
    add_json_flag(r)
    r.set_defaults(func=cmd_permit_rollback)

    from host_tools.cli import firmware_cpl

    firmware_cpl.register(fsub)


def _documented(sub: argparse._SubParsersAction, name: str, help: str, doc: str | None) -> argparse.ArgumentParser:
    """A command whose description is a module's docstring, laid out as written."""
    return sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def _answer(client, op: str, args: dict | None = None):
    """The agent's answer to op, which must be a success."""
    r = checked(client, op, args)
    if not r.ok:
        raise CommandError(f"{op} failed: {r.rc} {r.err or ''}")
    return r


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, enabled: bool = True, out=None):
        self.total = max(total, 1)
        self.enabled = enabled
        self.out = out or sys.stderr
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        frac = done / self.total
        bar = "#" * int(frac * 30)
        rate = done / max(now - self.t0, 1e-6) / 1024
        self.out.write(f"\r[{bar:30s}] {frac * 100:5.1f}% {done}/{self.total} B {rate:7.1f} KiB/s")
        if final:
            self.out.write("\n")
        self.out.flush()


def _hexed(obj):
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, dict):
        return {k: _hexed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hexed(v) for v in obj]
    return obj


def _image_line(name, info: dict) -> str:
    return (
        f"{name}: {info['board']}{' radio ' + info['radio'] if info.get('radio') else ''} {info['version']}, {info['files']} files, {info['size']} bytes, "
        f"{'signed' if info['signed'] else 'unsigned'}, security counter {info['sec']}\nFirmwareHash {info['hash']}"
    )


def cmd_build(args: argparse.Namespace) -> int:
    from agent import VERSION

    version = args.version or VERSION
    data = build_content(args.board, version, args.security_counter, debug=args.debug, radio=args.radio)
    radio = board_radio(args.board, args.radio)  # the board and the radio are known now
    if args.key or args.sign:
        data = sign_image(data, load_private_key(args.key))
    out = Path(args.out or f"dbch-{args.board}-{radio + '-' if args.radio else ''}{version}.img")
    write_file(out, data)
    info = describe(data)
    info["file"] = str(out)
    info["radio"] = radio  # what the image's board runs it with (null: a board with one radio)
    emit(args, info, _image_line(out, info))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    signed = sign_image(data, load_private_key(args.key))
    out = Path(args.out or args.image)
    write_file(out, signed)
    info = describe(signed)
    info["file"] = str(out)
    emit(args, info, f"{out}: signed\nFirmwareHash {info['hash']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    info = describe(data)
    if args.pub:
        try:
            res = verify_image(data, load_signing_public(args.pub))
        except image.ImageError as e:
            raise CommandError(f"{args.image}: {e}") from e
        info["signature_valid"] = res["valid"]
    text = _image_line(args.image, info)
    if "signature_valid" in info:
        text += f"\nsignature {'valid' if info['signature_valid'] else 'INVALID'} for that key"
    emit(args, info, text)
    return 0 if info.get("signature_valid", True) else 1


def cmd_send(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    client = open_client(args)
    permit = read_permit(args.permit) if args.permit else None
    if not 9 <= args.window <= 15:
        raise CommandError(f"--window: 9 to 15 (log2 bytes), not {args.window}", 2)
    base = read_image(args.base) if args.base else kept_image
    bar = Progress(len(split(data)[0]), enabled=not args.quiet)
    res = _hexed(
        send(
            client,
            data,
            chunk=args.chunk,
            progress=bar,
            permit=permit,
            compress=not args.plain,
            wbits=args.window,
            base=base,
        )
    )
    if not res.get("already"):
        keep_image(data)  # the base of the next update, once it runs
    if res.get("already"):
        where = "running" if res.get("running") else f"staged in slot {res.get('slot')}"
        text = f"already {where}: FirmwareHash {res['hash']}"
    else:
        rate = res["sent"] / max(res["seconds"], 1e-6) / 1024
        if res.get("fallback"):
            how = f"partly in plain chunks: the hub refused a compressed chunk ({res['fallback']})"
        elif res.get("wbits"):
            how = f"as a deflate stream of {res['stream']} bytes (window {1 << res['wbits']} bytes)"
            how += " against the image the hub runs" if res.get("against") else ""
        else:
            how = "in plain chunks" + ("" if args.plain else " (the hub takes no compressed stream)")
        text = (
            f"staged {res['version']} in slot {res['slot']}: {res['sent']} bytes in {res['seconds']:.1f} s "
            f"({rate:.1f} KiB/s) {how}\nFirmwareHash {res['hash']}\nactivate: dbch firmware activate {res['hash']}"
        )
    emit(args, res, text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    d = _answer(open_client(args), "fw.status").data
    lines = [f"running   {d['version']} from slot {d['slot']}{' (trial, not yet confirmed)' if d['trial'] else ''}"]
    for s, m in sorted((d.get("slots") or {}).items()):
        lines.append(f"slot {s}    " + (f"{m['version']}  {m['hash']}" if m else "empty"))
    st = d.get("staging")
    if st:
        lines.append(f"staging   {st['staged']}/{st['size']} bytes of {st['hash']}")
    act = d.get("activation")
    if act:
        lines.append(f"activation {act['state']} of {act['hash']}" + (f" at {act['at']}" if act.get("at") else ""))
    if d.get("last"):
        last = d["last"]
        lines.append(f"last      {last.get('result')} {last.get('version')} {last.get('why') or ''}".rstrip())
    if "min" in d:
        lines.append(f"security  counter {d.get('sec')}, minimum {d['min']} (older images need a rollback permission)")
    if not d.get("key"):
        lines.append("no trusted signing key: updates are refused (dbch flash --signing-key PUB)")
    emit(args, d, "\n".join(lines))
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    client = open_client(args)
    if args.cancel:
        op, a = "fw.cancel", ({"hash": parse_hash(args.hash)} if args.hash else {})
    else:
        if not args.hash:
            raise CommandError("give the FirmwareHash (or the image file) to activate, or --cancel")
        op, a = "fw.activate", {"hash": parse_hash(args.hash), "execution": args.at}
        if args.permit:
            a["permit"] = read_permit(args.permit)
    r = checked(client, op, a)
    if not r.ok:
        raise FirmwareError(op, r.rc, r.err)
    d = _hexed(r.data or {})
    d["rc"] = r.rc
    if args.cancel:
        text = f"{r.rc}: activation of {d.get('hash')} cancelled"
    elif d.get("reboot"):
        text = f"{r.rc}: activating {d.get('version')} from slot {d.get('slot')}: the board reboots into it on trial"
    else:
        text = f"{r.rc}: activation of {d.get('version')} scheduled at UTC {d.get('at')}"
    emit(args, d, text)
    return 0


def cmd_permit_rollback(args: argparse.Namespace) -> int:
    from agent.eui import format_eui, parse_eui

    try:
        eui = parse_eui(args.eui)
    except ValueError as e:
        raise CommandError(f"--eui: {e}") from e
    digest = parse_hash(args.hash)
    data = make_permit(eui, digest, load_private_key(args.key))
    out = Path(args.out or f"rollback-{eui.hex().upper()}-{digest.hex()[:8]}.permit")
    write_file(out, data)
    info = {"file": str(out), "eui": format_eui(eui), "hash": digest.hex(), "size": len(data)}
    use = f"dbch firmware send IMAGE --permit {out}; dbch firmware activate {info['hash']} --permit {out}"
    emit(args, info, f"{out}: hub {info['eui']} may take image {info['hash']} below its minimum\nuse: {use}")
    return 0
