"""`dbch pki init | device | tool | user | signing-key | show`: the development PKI
(host_tools.security.pki)."""

from __future__ import annotations

import argparse
from pathlib import Path

from host_tools.cli.groups import add_group
from host_tools.cli.output import add_json_flag, emit
from host_tools.security import pki as pki_module
from host_tools.security.pki import DEFAULT_CA_DAYS, DEFAULT_CA_NAME, DEFAULT_LEAF_DAYS, ENV_DIR, Pki, default_dir


def add_pki_dir(p: argparse.ArgumentParser, flag: str = "--pki") -> None:
    """The option that names the PKI directory (`dbch pki` calls it --dir, its users --pki)."""
    p.add_argument(flag, type=Path, metavar="DIR", help=f"PKI directory (default ${ENV_DIR} or {default_dir()})")


def _text_item(item: dict) -> str:
    extra = "" if item.get("issued_by_ca", True) else "  NOT ISSUED BY THIS CA"
    return (
        f"{item['kind']:7} {item['subject_cn']:32} {item['status']:13} until {item['not_after'][:10]}"
        f"  sha256 {item['sha256'][:16]}{extra}\n        {item['files']['cert_der']}"
    )


def _validity_args(p: argparse.ArgumentParser, days: int) -> None:
    p.add_argument("--days", type=int, default=days, help=f"validity in days (default {days})")
    p.add_argument("--not-before", metavar="ISO", help="start of validity (ISO 8601, UTC unless given)")
    p.add_argument("--not-after", metavar="ISO", help="end of validity (overrides --days)")


def register(subparsers) -> None:
    sub = add_group(
        subparsers,
        "pki",
        "development PKI: CA, hub, triage tool and DUIS signing certificates, firmware signing key",
        pki_module.__doc__,
    )

    def action(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        add_pki_dir(p, "--dir")
        add_json_flag(p)
        p.set_defaults(func=func)
        return p

    p = action("init", "create the development CA", _cmd_init)
    p.add_argument("--name", default=DEFAULT_CA_NAME, help="the CA's common name")
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    _validity_args(p, DEFAULT_CA_DAYS)

    p = action("device", "issue a hub certificate whose identity is its EUI-64", _cmd_device)
    p.add_argument("eui", help="the hub's EUI-64, e.g. 00-1B-C5-0C-00-00-12-34 or 001BC50C00001234")
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)

    p = action("tool", "issue a triage tool certificate", _cmd_tool)
    p.add_argument("name", help="the triage tool's name (letters, digits, '-', '.')")
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)

    p = action("user", "issue a DUIS message-signing certificate for a User (or the DCC) by User ID", _cmd_user)
    p.add_argument("eui", help="the User ID (EUI-64) whose requests (or, for the DCC, responses) it signs")
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)

    p = action(
        "infra",
        "issue a DCCKI-like RSA infrastructure certificate (the DCC front's TLS, a User's endpoint)",
        _cmd_infra,
    )
    p.add_argument("name", help="its name: the CN and a DNS name (letters, digits, '-', '.'), e.g. dcc-front")
    p.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME|IP",
        help="another DNS name or IP address it answers as (repeat), e.g. --host localhost --host 127.0.0.1",
    )
    p.add_argument("--force", action="store_true", help="replace an existing key and certificate")
    _validity_args(p, DEFAULT_LEAF_DAYS)

    p = action("signing-key", "create the firmware signing key (ECDSA P-256)", _cmd_signing_key)
    p.add_argument("--force", action="store_true", help="replace an existing signing key")

    action("show", "list the CA, certificates and signing key", _cmd_show)


def _cmd_init(args) -> int:
    pki = Pki(args.dir)
    item = pki.init_ca(args.name, args.days, args.not_before, args.not_after, args.force).summary()
    emit(args, item, f"CA created in {pki.ca_dir}\n" + _text_item(item))
    return 0


def _cmd_leaf(args, kind: str, name: str) -> int:
    """Issue a leaf certificate (a "device", "tool" or "user") and show it."""
    pki = Pki(args.dir)
    issued = pki.issue(kind, name, args.days, args.not_before, args.not_after, args.force)
    item = issued.summary(pki.ca().cert)
    emit(args, item, _text_item(item))
    return 0


def _cmd_device(args) -> int:
    return _cmd_leaf(args, "device", args.eui)


def _cmd_tool(args) -> int:
    return _cmd_leaf(args, "tool", args.name)


def _cmd_user(args) -> int:
    return _cmd_leaf(args, "user", args.eui)


def _cmd_infra(args) -> int:
    from host_tools.security.dccki import Dccki

    dccki = Dccki(Pki(args.dir).dir)
    item = dccki.issue(args.name, args.host, args.days, args.not_before, args.not_after, args.force).summary()
    emit(
        args,
        item,
        f"infra   {item['name']:32} {item['key']}  until {item['not_after'][:10]}  sha256 {item['sha256'][:16]}"
        f"\n        answers as {', '.join(item['hosts'])}\n        {item['files']['cert_pem']}"
        f"\n        CA {item['files']['ca_pem']}",
    )
    return 0


def _cmd_signing_key(args) -> int:
    pki = Pki(args.dir)
    info = pki.make_signing_key(args.force)
    emit(args, info, f"signing key in {pki.signing_dir}\npublic point {info['public_point']}")
    return 0


def _cmd_show(args) -> int:
    from host_tools.security.dccki import Dccki

    info = Pki(args.dir).show()
    dccki = Dccki(info["dir"])
    info["infra"] = [dccki.infra(name).summary() for name in dccki.names()]
    lines = [f"PKI in {info['dir']}"]
    if info["ca"] is None:
        lines.append("no CA yet: run `dbch pki init`")
    else:
        lines.append(_text_item(info["ca"]))
    lines += [_text_item(i) for i in info["devices"] + info["tools"] + info["users"]]
    lines += [
        f"infra   {i['name']:32} {i['key']}  until {i['not_after'][:10]}  sha256 {i['sha256'][:16]}"
        for i in info["infra"]
    ]
    if info["signing_key"]:
        lines.append(f"signing key: public point sha256 {info['signing_key']['public_sha256'][:16]}")
    emit(args, info, "\n".join(lines))
    return 0
