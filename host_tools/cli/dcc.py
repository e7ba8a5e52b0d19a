"""`dbch dcc serve` (the DCC front: DUIS over HTTPS with hubs behind it) and `dbch dcc receive`
(a User's receiving endpoint): the command line of host_tools.dcc."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from host_tools.cli import dcc_schedules
from host_tools.cli.groups import add_group
from host_tools.cli.options import add_port_args, ports_of
from host_tools.cli.output import CommandError, add_json_flag, say
from host_tools.cli.pki import add_pki_dir
from host_tools.dcc import routes
from host_tools.dcc.queue import DEFAULT_BASE, DEFAULT_CAP
from host_tools.dcc.tls import OPENSSL_SUITE, SUITE
from host_tools.paths import data_dir

DCC_DESCRIPTION = """\
DUIS as the DCC carries it: `dbch dcc serve` is the DCC front toward the hubs behind it, which DCC
Users drive with their own DUIS tooling; `dbch dcc receive` is a User's receiving endpoint.

TLS as the DCC User Interface has it (SEC Appendix AD 2.2): TLS 1.2 only, the one cipher suite
{} ({}), certificates both ways: DCCKI-like RSA infrastructure
certificates from `dbch pki infra NAME`. Plain HTTP only on loopback and only with --insecure-http.

Message authentication as DCC Boxed does it (host_tools.duis.signing): each request must be signed
by the certificate of the User its RequestID names (listed in --users; else E100); every document
the front sends is signed with the DCC's key (--dcc-id, from `dbch pki user`), and `dbch dcc
receive` verifies it with the DCC's certificate. --unsigned turns both off, for tooling without keys.
The DCC decides on each request in its order: E1-E5 (E4 first), then E48, E13, E12, E49, E55, E19, E11.

Users POST DUIS requests (application/xml) to {}.
serviceS and serviceT answer I99 (Acknowledgement) and the Service Response follows at the User's
receive URL; serviceD answers with the result. A request on the wrong path is E13. Service
Responses and DCC Alerts wait in a queue on disk until the User's endpoint answers 2xx, retried
with backoff, each with a ResponseID the receiver drops a second copy by.
""".format(SUITE, OPENSSL_SUITE, ", ".join(routes.PATHS))


def _signature_args(p: argparse.ArgumentParser, what: str) -> None:
    from host_tools.dcc.seams import DCC_USER_ID

    p.add_argument(
        "--dcc-id", default=DCC_USER_ID, metavar="EUI", help="the DCC's User ID, " + what + " (default %(default)s)"
    )
    p.add_argument(
        "--unsigned",
        action="store_true",
        help="no DUIS message signatures: nothing is signed or verified (for User tooling without keys)",
    )


def _tls_args(p: argparse.ArgumentParser, default_name: str) -> None:
    add_pki_dir(p)
    p.add_argument(
        "--cert",
        default=default_name,
        metavar="NAME",
        help="the infrastructure certificate to serve and dial with (dbch pki infra NAME; default %(default)s)",
    )
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="plain HTTP instead of TLS (loopback addresses only: for tests on one machine)",
    )


def register(subparsers) -> None:
    sub = add_group(
        subparsers,
        "dcc",
        "the DCC front over HTTPS (serve), a User's receiving endpoint (receive), DCC Schedules (schedules)",
        DCC_DESCRIPTION,
    )
    dcc_schedules.register(sub)

    p = sub.add_parser(
        "serve",
        help="serve DUIS over HTTPS as DCC Boxed does, with the hubs of --port behind it",
        description=DCC_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8079", metavar="HOST:PORT", help="where Users connect (default %(default)s)"
    )
    _tls_args(p, "dcc-front")
    p.add_argument(
        "--users",
        metavar="FILE",
        help="the User list (JSON: each User's EUI, roles, signing certificate, receive URL, devices; "
        "see host_tools.duis.userlist)",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EUI=URL",
        help="a User with every role, registered for every hub, and its receive URL (repeat; with --users "
        "too), e.g. 90-B3-D5-1F-30-01-00-00=https://host:8080/smartdcc/duis. It has no certificate, so it "
        "is taken only with --unsigned",
    )
    _signature_args(p, "whose key and certificate (dbch pki user EUI) sign every document the front sends")
    p.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        help=f"where the delivery queue is kept (default {data_dir('dcc', 'front')})",
    )
    p.add_argument(
        "--schema", metavar="DIR", help="the DUIS schema folder (default: $DBCH_DUIS_SCHEMA_DIR, else fetched)"
    )
    p.add_argument(
        "--retry-base",
        type=float,
        default=DEFAULT_BASE,
        metavar="S",
        help="first retry after S seconds (default %(default)g), doubling",
    )
    p.add_argument(
        "--retry-cap",
        type=float,
        default=DEFAULT_CAP,
        metavar="S",
        help="at most S seconds between retries (default %(default)g)",
    )
    p.add_argument(
        "--for", dest="duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)"
    )
    add_port_args(p, many=True)
    add_json_flag(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "receive",
        help="a User's receiving endpoint: validate, verify, drop duplicates, print or store",
        description="A DCC User's receiving endpoint for Service Responses and DCC Alerts: each POST "
        "is validated against the DUIS schema and verified, answered 204 (taken, or a second copy, "
        "dropped by its ResponseID) or 400, and printed (--json: one JSON object a line) or stored (--out).",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="where the front connects (default %(default)s)"
    )
    p.add_argument("--path", default=routes.DEFAULT_RECEIVE_PATH, help="the receive path (default %(default)s)")
    _tls_args(p, "dcc-user")
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="store each document as DIR/<ResponseID>.xml; the ResponseIDs taken are kept in DIR/seen",
    )
    p.add_argument(
        "--schema", metavar="DIR", help="the DUIS schema folder (default: $DBCH_DUIS_SCHEMA_DIR, else fetched)"
    )
    _signature_args(p, "whose certificate (dbch pki user EUI) verifies what arrives, unless --dcc-cert is given")
    p.add_argument(
        "--dcc-cert", metavar="FILE", type=Path, help="the DCC's signing certificate (PEM or DER) to verify with"
    )
    p.add_argument("--xml", action="store_true", help="print each document's XML too (text output)")
    p.add_argument(
        "--show-duplicates",
        action="store_true",
        help="print the second copies too, marked duplicate (they are answered 204 and dropped either way)",
    )
    p.add_argument("--count", type=int, metavar="N", help="stop after N documents taken")
    p.add_argument("--for", dest="duration", type=float, metavar="S", help="stop after S seconds")
    add_json_flag(p)
    p.set_defaults(func=cmd_receive)


def _contexts(args: argparse.Namespace):
    """(server context, client context) from --pki/--cert, or (None, None) with --insecure-http."""
    if args.insecure_http:
        return None, None
    from host_tools.dcc.tls import client_context, server_context
    from host_tools.security.dccki import Dccki
    from host_tools.security.pki import Pki

    infra = Dccki(Pki(args.pki).dir).infra(args.cert)
    return (
        server_context(infra.cert_pem, infra.key_pem, infra.ca_pem),
        client_context(infra.cert_pem, infra.key_pem, infra.ca_pem),
    )


def _listen(args: argparse.Namespace) -> tuple[str, int]:
    from host_tools.servers.triage.addresses import parse_hostport

    return parse_hostport(args.listen)


def _wait(duration: float | None, done: threading.Event | None = None) -> None:
    end = None if duration is None else time.monotonic() + duration
    try:
        while end is None or time.monotonic() < end:
            if done is not None and done.is_set():
                return
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass


def _dcc_signer(args: argparse.Namespace):
    """(key, certificate) of the DCC's User ID from the PKI."""
    from host_tools.security.pki import Pki, PkiError

    pki = Pki(args.pki)
    try:
        return pki.user_key(args.dcc_id), pki.user(args.dcc_id).cert
    except PkiError as e:
        raise _no_dcc_key(args, e, "sign with") from e


def _no_dcc_key(args: argparse.Namespace, error: Exception, what: str) -> CommandError:
    return CommandError(
        "no DCC signing certificate to {} ({}): make one with `dbch pki user {}` (the DCC's User ID, "
        "--dcc-id), or run without DUIS signatures (--unsigned)".format(what, error, args.dcc_id)
    )


def _front_seams(args: argparse.Namespace):
    """The front's Users, and how it signs and verifies (--unsigned: not at all)."""
    from host_tools.dcc.seams import Seams, unkeyed_user
    from host_tools.duis.userlist import UserList, load_users

    users = load_users(args.users) if args.users else UserList({})
    for pair in args.user:
        user = unkeyed_user(pair)
        users.users[user.eui] = user
    if not users.users:
        raise CommandError("no Users: give --users FILE (or, with --unsigned, --user EUI=URL)")
    if args.unsigned:
        return Seams.unsigned(users)
    if args.user:
        raise CommandError(
            "--user gives a User without a signing certificate, whose requests would all be E100: "
            "list it in --users FILE with its certificate (dbch pki user EUI), or add --unsigned"
        )
    key, certificate = _dcc_signer(args)
    return Seams.signed(users, key, certificate)


def _receiver_verify(args: argparse.Namespace):
    from cryptography import x509

    from host_tools.dcc.seams import accept_all, verify_from
    from host_tools.security.pki import Pki, PkiError

    if args.unsigned:
        return accept_all
    if args.dcc_cert:
        try:
            data = args.dcc_cert.read_bytes()
            pem = data.lstrip().startswith(b"-----")
            cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
        except (OSError, ValueError) as e:
            raise CommandError(
                "--dcc-cert {}: not a readable certificate (PEM or DER): {}".format(args.dcc_cert, e)
            ) from e
        return verify_from([cert])
    try:
        return verify_from([Pki(args.pki).user(args.dcc_id).cert])
    except PkiError as e:
        raise _no_dcc_key(args, e, "verify with (or give --dcc-cert FILE)") from e


def cmd_serve(args: argparse.Namespace) -> int:
    from host_tools.dcc.front import DccFront, FrontOptions
    from host_tools.duis.schema import load_schema, schema_dir
    from host_tools.link.agent import Agent, connect

    seams = _front_seams(args)
    host, port = _listen(args)
    context, client = _contexts(args)
    schema = schema_dir(args.schema)
    load_schema(schema)  # slow once: before the first request
    agents = [Agent(connect(p, baud=args.baud, timeout=args.timeout)) for p in ports_of(args)]
    options = FrontOptions(
        host=host,
        port=port,
        context=context,
        client_context=client,
        allow_http=args.insecure_http,
        state=args.state or data_dir("dcc", "front"),
        schema=schema,
        retry_base=args.retry_base,
        retry_cap=args.retry_cap,
        seams=seams,
    )
    front = DccFront(agents, options, note=lambda m: say("dbch dcc: " + m)).start()
    info = front.status()
    if args.json:
        signed = {"signed": not args.unsigned, "dcc_id": None if args.unsigned else args.dcc_id}
        print(json.dumps({"event": "serving", **info, **signed}), flush=True)
    else:
        say(
            "DCC front on {} ({}; {}) for hub(s) {}; {} deliveries waiting".format(
                front.url,
                "TLS 1.2 " + OPENSSL_SUITE if context else "plain HTTP",
                "unsigned" if args.unsigned else "signed as DCC " + args.dcc_id,
                ", ".join(info["hubs"]),
                info["pending"],
            )
        )
    try:
        _wait(args.duration)
    finally:
        front.stop()
        for a in agents:
            a.close()
    info = front.status()
    if args.json:
        print(json.dumps({"event": "stopped", **info}), flush=True)
    else:
        say(
            "stopped: {requests} request(s), {acknowledged} acknowledged, {delivered} delivered, {pending} waiting".format(
                **info
            )
        )
    return 0


def _text(r) -> str:
    f = r.facts
    what = "alert {}".format(f.alert_code) if f.alert_code else "response SRV {}".format(f.service_reference_variant)
    return "{} {} {} RequestID {} ResponseID {}".format(
        "duplicate" if r.duplicate else "received",
        f.response_code or "-",
        what,
        f.request_id or "-",
        f.response_id or "-",
    )


def cmd_receive(args: argparse.Namespace) -> int:
    from host_tools.dcc.httpd import DuisHttpServer
    from host_tools.dcc.receiver import Receiver
    from host_tools.duis.schema import load_schema, schema_dir

    host, port = _listen(args)
    context, _client = _contexts(args)
    schema = schema_dir(args.schema)
    load_schema(schema)
    done = threading.Event()

    def on_message(r) -> None:
        if args.json:
            print(json.dumps(r.record()), flush=True)
        else:
            print(_text(r) + ("\n" + r.xml.decode("utf-8", "replace") if args.xml else ""), flush=True)
        if args.count and not r.duplicate and receiver.taken + 1 >= args.count:
            done.set()

    receiver = Receiver(
        path=args.path,
        schema=schema,
        verify=_receiver_verify(args),
        store=args.out,
        on_message=on_message,
        on_refused=lambda why: say("dbch dcc receive: refused: " + why),
        show_duplicates=args.show_duplicates,
    )
    server = DuisHttpServer(host, port, receiver.take, context)
    server.start()
    scheme = "https" if context else "http"
    say(
        "receiving on {}://{}:{}{} ({}; {})".format(
            scheme,
            host,
            server.port,
            args.path,
            "TLS 1.2 " + OPENSSL_SUITE if context else "plain HTTP",
            "unverified" if args.unsigned else "verified with the DCC's certificate",
        )
    )
    try:
        _wait(args.duration, done)
    finally:
        server.shutdown()
        server.server_close()
    say("taken {}, duplicates dropped {}, refused {}".format(receiver.taken, receiver.duplicates, receiver.refused))
    return 0
