"""What charon holds: its IKE_SAs and their CHILD_SAs, as vici lists them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from host_tools.security.ipsec.vici_session import as_int, as_text


@dataclass
class ChildStatus:
    """The CHILD_SA of one connection, and the state of its IKE_SA (raw: that IKE_SA as vici
    gives it)."""

    ike_state: str
    child_state: str
    protocol: str
    encr_alg: str
    encr_keysize: str
    encap: bool
    local_ts: list[str]
    remote_ts: list[str]
    bytes_in: int
    bytes_out: int
    remote_id: str
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def installed(self) -> bool:
        return self.ike_state == "ESTABLISHED" and self.child_state == "INSTALLED"

    @property
    def aead(self) -> bool:
        return self.encr_alg.startswith("AES_GCM") or self.encr_alg.startswith("AES_CCM") or "CHACHA20" in self.encr_alg

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("raw")
        d["installed"] = self.installed
        d["aead"] = self.aead
        return d


def _ike_sas(session, name: str | None = None) -> Iterator[tuple[str, dict]]:
    """(name, the IKE_SA as vici gives it) of each IKE_SA charon holds (only connection `name`'s)."""
    for entry in session.list_sas({"ike": name} if name else {}):
        for ike_name, ike in entry.items():
            yield as_text(ike_name), ike


def _child_summary(child: dict) -> dict:
    """One CHILD_SA as vici gives it, in text and numbers (None where vici gives none)."""
    return {
        "name": as_text(child.get("name", b"")),
        "uniqueid": as_text(child.get("uniqueid", b"")),
        "state": as_text(child.get("state", b"")),
        "mode": as_text(child.get("mode", b"")),
        "protocol": as_text(child.get("protocol", b"")),
        "encap": as_text(child.get("encap", b"no")) == "yes",
        "encr_alg": as_text(child.get("encr-alg", b"")),
        "encr_keysize": as_text(child.get("encr-keysize", b"")),
        "local_ts": [as_text(t) for t in child.get("local-ts", [])],
        "remote_ts": [as_text(t) for t in child.get("remote-ts", [])],
        "bytes_in": as_int(child.get("bytes-in")),
        "bytes_out": as_int(child.get("bytes-out")),
        "packets_in": as_int(child.get("packets-in")),
        "packets_out": as_int(child.get("packets-out")),
        "installed_s": as_int(child.get("install-time")),
        "expires_in_s": as_int(child.get("life-time")),
    }


def list_sas(session, name: str | None = None) -> list[dict]:
    """The IKE_SAs charon holds (only connection `name`'s if given), each with its CHILD_SAs."""
    out = []
    for ike_name, ike in _ike_sas(session, name):
        out.append(
            {
                "name": ike_name,
                "uniqueid": as_text(ike.get("uniqueid", b"")),
                "state": as_text(ike.get("state", b"")),
                "version": as_text(ike.get("version", b"")),
                "initiator": as_text(ike.get("initiator", b"no")) == "yes",
                "local": {
                    "host": as_text(ike.get("local-host", b"")),
                    "port": as_int(ike.get("local-port")),
                    "id": as_text(ike.get("local-id", b"")),
                },
                "remote": {
                    "host": as_text(ike.get("remote-host", b"")),
                    "port": as_int(ike.get("remote-port")),
                    "id": as_text(ike.get("remote-id", b"")),
                },
                "encr_alg": as_text(ike.get("encr-alg", b"")),
                "encr_keysize": as_text(ike.get("encr-keysize", b"")),
                "prf_alg": as_text(ike.get("prf-alg", b"")),
                "dh_group": as_text(ike.get("dh-group", b"")),
                "established_s": as_int(ike.get("established")),
                "children": [_child_summary(c) for c in ike.get("child-sas", {}).values()],
            }
        )
    return out


def child_status(session, name: str, child: str) -> ChildStatus | None:
    """The CHILD_SA `child` of connection `name`, or None when charon holds none."""
    for ike_name, ike in _ike_sas(session, name):
        if ike_name != name:
            continue
        for c in map(_child_summary, ike.get("child-sas", {}).values()):
            if c["name"] == child:
                return ChildStatus(
                    ike_state=as_text(ike.get("state", b"")),
                    child_state=c["state"],
                    protocol=c["protocol"],
                    encr_alg=c["encr_alg"],
                    encr_keysize=c["encr_keysize"],
                    encap=c["encap"],
                    local_ts=c["local_ts"],
                    remote_ts=c["remote_ts"],
                    bytes_in=c["bytes_in"] or 0,
                    bytes_out=c["bytes_out"] or 0,
                    remote_id=as_text(ike.get("remote-id", b"")),
                    raw=ike,
                )
    return None
