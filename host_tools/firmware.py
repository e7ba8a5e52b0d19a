"""`dbch firmware`: build, sign, send and activate agent firmware images; check reported versions
against the Central Products List.

    dbch firmware build [--board B] [--version V] [--out FILE] [--key KEY]
    dbch firmware sign IMAGE [--key KEY] [--out FILE]
    dbch firmware info IMAGE [--pub PUB]
    dbch firmware send IMAGE [--port P] [--chunk N]
    dbch firmware status [--port P]
    dbch firmware activate HASH|IMAGE [--at ISO] | --cancel
    dbch firmware cpl-check --cpl FILE --smi FILE [--port P | --reported EUI=VERSION ...]

Image format: agent/image.py. An image is its CONTENT (header with the CBOR manifest, then the
.mpy files) followed by a signature trailer. The FirmwareHash of DUIS 11.3 is SHA-256(CONTENT),
and the signature is ECDSA P-256 / SHA-256 over CONTENT, made with the manufacturer's key
(--key: a PEM or DER PKCS#8 private key; default: the development PKI's signing key, created by
`dbch pki signing-key`). The device trusts one public key, provisioned by `dbch flash`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from agent import image
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


def build_content(board: str, version: str) -> bytes:
    """An unsigned image of the agent for board, compiled with mpy-cross as dbch flash does."""
    from host_tools.flash import build_image

    try:
        image.check_version(version)
    except image.ImageError as e:
        raise CommandError(f"--version: {e}") from e
    files = [(c.target, c.data) for c in build_image(board)]
    return image.build(version, board, files, {"built": int(time.time())})


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
    """Check an image as the device does (agent.image parser, agent.p256), on the host."""
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
    content, sig = split(data)
    m, _n = image.parse_head(content)
    return {
        "version": m["version"],
        "board": m["board"],
        "files": m["files"],
        "size": len(content),
        "hash": firmware_hash(content).hex(),
        "signed": sig is not None,
    }


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
) -> dict:
    """Stage a signed image on the agent (resuming where it stopped); the agent's fw.end data
    plus {"hash", "sent", "seconds"}. FirmwareError if the agent refuses it."""
    content, sig = split(data)
    if sig is None:
        raise CommandError("the image is not signed: dbch firmware sign IMAGE --key KEY")
    digest = firmware_hash(content)
    size = len(content)
    t0 = time.monotonic()
    sent = 0
    tries = 0
    while True:
        try:
            r = client.request("fw.begin", {"hash": digest, "size": size, "sig": sig})
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
        dest="firmware_cmd", metavar="build|sign|info|send|status|activate|cpl-check", required=True
    )

    b = fsub.add_parser("build", help="compile the agent into a firmware image (and sign it with --key)")
    b.add_argument("--board", default="unix", help="board module (default: unix, the virtual board)")
    b.add_argument("--version", help="FirmwareVersion, 1-8 characters (default: the build's)")
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
    add_port_args(a)
    add_json_flag(a)
    a.set_defaults(func=cmd_activate)

    from host_tools import cpl

    cpl.register(fsub)


def cmd_build(args: argparse.Namespace) -> int:
    from agent import VERSION

    version = args.version or VERSION
    content = build_content(args.board, version)
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
        f"{'signed' if info['signed'] else 'unsigned'}\nFirmwareHash {info['hash']}",
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
        f"{'signed' if info['signed'] else 'unsigned'}\nFirmwareHash {info['hash']}"
    )
    if "signature_valid" in info:
        text += f"\nsignature {'valid' if info['signature_valid'] else 'INVALID'} for that key"
    emit(args, info, text)
    return 0 if info.get("signature_valid", True) else 1


def cmd_send(args: argparse.Namespace) -> int:
    data = read_image(args.image)
    client = open_client(args)
    bar = Progress(len(split(data)[0]), enabled=not args.quiet)
    res = send(client, data, chunk=args.chunk, progress=bar)
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
