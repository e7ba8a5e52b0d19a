"""`dbch gateway`: the hubs of its ports on an MQTT broker (host_tools.fleet)."""

from __future__ import annotations

import argparse
import threading

from host_tools.cli.events import print_event, stopped_by_signals
from host_tools.cli.options import add_port_args, ports_of
from host_tools.cli.output import add_json_flag
from host_tools.cli.pki import add_pki_dir

DESCRIPTION = """\
Attach the hubs of --port (repeat it: virtual boards, CPython agents, serial devices) to an MQTT
broker over TLS with a client certificate (MQTT 5). Per hub: retained dbch/<EUI>/state, retained
dbch/<EUI>/availability (online; offline as the connection's will), each upward alert with QoS 1
on dbch/<EUI>/alert/<code> (acknowledged to the hub only after the broker's PUBACK: nothing is
lost when the broker or the gateway stops), and answers to dbch/<EUI>/cmd/<op> (any of the agent's
requests: status, config/get, config/set with payload {"config": {...}}, fw.status, ...; payload a
JSON object, or CBOR with content type application/cbor) on their MQTT 5 response topic, with
their correlation data. One thread serves every hub.
Runs until Ctrl-C or SIGTERM. With --json, one JSON line per event on stdout ("ready" first)."""

EPILOG = """\
The TLS identity is a tool certificate of the PKI (`dbch pki init`, `dbch pki tool NAME`); the
broker's certificate must be signed by the same CA, e.g. `dbch pki tool localhost` for a broker
on this machine. Example:
  dbch gateway --port sim:a --port sim:b --broker mqtts://localhost:8883 --identity gw1"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gateway",
        help="attach hubs to an MQTT broker: state, availability, alerts (QoS 1), commands",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_port_args(p, many=True)
    add_json_flag(p)
    p.add_argument(
        "--broker",
        required=True,
        metavar="mqtts://HOST:PORT",
        help="the MQTT broker (TLS; mqtt://localhost:1883 for one on this machine without TLS)",
    )
    add_pki_dir(p)
    p.add_argument(
        "--identity", metavar="NAME", help="the PKI's tool certificate to connect with (default: the only one)"
    )
    p.add_argument("--name", help="this gateway's name in its hubs' state (default: HOST-PID)")
    p.set_defaults(func=cmd_gateway)


def _text(kind: str, data: dict) -> str | None:
    if kind == "ready":
        return f"{len(data['hubs'])} hub(s) on {data['broker']}: " + ", ".join(
            f"{h['eui']} ({h['port']})" for h in data["hubs"]
        )
    if kind == "connected":
        return f"hub {data['eui']} connected to {data['broker']}"
    if kind == "disconnected":
        return f"hub {data['eui']} lost the broker ({data['reason']}): reconnecting; its outbox keeps its alerts"
    if kind == "hub-lost":
        return (
            f"hub {data['eui']}: its port {data['port']} was lost ({data['error']}): offline until it answers"
            " there again (tried every 1-30 s); its outbox keeps its alerts"
        )
    if kind == "hub-back":
        return f"hub {data['eui']} is back on {data['port']}: online"
    if kind == "hub-changed":
        return f"the port {data['port']} of hub {data['eui']} now has the hub {data['now']}: not attached"
    if kind == "stopped":
        return f"stopped: {data['published']} alert(s) published and acknowledged"
    return None


def cmd_gateway(args: argparse.Namespace) -> int:
    from host_tools.fleet.broker import Broker
    from host_tools.fleet.gateway import Gateway

    broker = Broker.parse(args.broker)
    identity = broker.identity(args.pki, args.identity)
    ports = ports_of(args)
    lock = threading.Lock()

    def report(kind: str, data: dict) -> None:
        with lock:
            print_event(args, "gateway", kind, data, _text)

    gateway = Gateway(ports, broker, identity, report, name=args.name, baud=args.baud, timeout=args.timeout)
    stopping = threading.Event()
    with stopped_by_signals(stopping):
        gateway.start()
        hubs = [{"eui": h.eui, "port": h.port} for h in gateway.hubs]
        report("ready", {"broker": str(broker), "gateway": gateway.name, "hubs": hubs})
        while not stopping.wait(0.5):
            if not gateway.thread.is_alive():
                break
        gateway.stop()
    report("stopped", {"published": sum(h.published for h in gateway.hubs)})
    return 0
