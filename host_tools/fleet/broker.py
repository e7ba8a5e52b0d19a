"""The broker a gateway connects to: its mqtts:// address, and a paho-mqtt MQTT 5 client for it
with mutual TLS (the CA, certificate and key of a `dbch pki` tool identity). A broker on this
machine's loopback may also be reached without TLS, as mqtt://localhost:1883 (for a lab broker
that has no certificates: nothing leaves the machine), as `dbch dcc serve --insecure-http` is."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from host_tools.errors import DbchError

DEFAULT_PORT = 8883
PLAIN_PORT = 1883
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class FleetError(DbchError):
    """The broker or the gateway cannot be used; the message says what to do."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = True

    @classmethod
    def parse(cls, url: str, path: bool = False) -> Broker:
        """mqtts://HOST[:PORT] (PORT 8883 if not given), or mqtt://LOOPBACK[:PORT] (1883);
        FleetError for anything else. path: a path may follow (a hub's EUI: host_tools.link.mqtt)."""
        how = "give it as mqtts://HOST:PORT (e.g. mqtts://localhost:8883)"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise FleetError(f"{url!r}: {e}; {how}") from e
        if parts.scheme not in ("mqtts", "mqtt") or not parts.hostname or (parts.path not in ("", "/") and not path):
            raise FleetError(f"{url!r}: {how}")
        if parts.scheme == "mqtt" and not is_loopback(parts.hostname):
            raise FleetError(
                f"{url!r}: without TLS only a broker on this machine's loopback (mqtt://localhost:1883): {how}"
            )
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (DEFAULT_PORT if tls else PLAIN_PORT), tls)

    def identity(self, directory: Path | str | None, name: str | None) -> Identity | None:
        """The TLS identity to connect with (Identity.from_pki); None for a broker without TLS."""
        return Identity.from_pki(directory, name) if self.tls else None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Identity:
    """The files of a TLS client identity: the CA that signed the broker's certificate and ours."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_pki(cls, directory: Path | str | None, name: str | None) -> Identity:
        """The tool certificate `name` of the PKI in `directory` (default: the only one there)."""
        from host_tools.security.pki import Pki

        pki = Pki(directory)
        if not pki.has_ca():
            raise FleetError(f"no CA in {pki.dir}: create one with `dbch pki init`, then `dbch pki tool NAME`")
        name = name or pki.only("tools", "tool", "--identity NAME", "`dbch pki tool NAME`")
        tool = pki.tool(name)
        return cls(pki.ca_dir / "ca.crt.pem", tool.cert_pem, tool.key_pem)


def new_client(client_id: str, identity: Identity | None):
    """A paho-mqtt client (MQTT 5, callback API 2) set up for mutual TLS with `identity` (None: a
    broker without TLS on loopback)."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:
        raise FleetError("the gateway needs paho-mqtt 2: pip install 'paho-mqtt>=2' (a dependency of dbch)") from e
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(1, 4)
    client.max_inflight_messages_set(100)
    if identity is None:
        return client
    try:
        client.tls_set(
            ca_certs=str(identity.ca),
            certfile=str(identity.cert),
            keyfile=str(identity.key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError) as e:
        raise FleetError(
            f"cannot load the TLS identity {identity.cert} ({e}): issue it with `dbch pki tool NAME`"
        ) from e
    return client
