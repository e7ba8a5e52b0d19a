"""A triage IPsec connection's configuration: from a policy-checked config (agent.triage) or the
`dbch pki` store, as the vici load-conn message, as swanctl.conf text and as a SWANCTL_DIR."""

from __future__ import annotations

from pathlib import Path

from agent.triage import check_policy
from host_tools.files import write_file
from host_tools.security.certs import common_name, dns_names, read_certificate
from host_tools.security.ipsec import IpsecError
from host_tools.security.pki import Pki, PkiError, normalize_eui


def cert_dns_id(pem_path: str | Path) -> str:
    """The identity a certificate asserts for IKE: its first SAN dNSName, else its CN."""
    cert = read_certificate(pem_path)
    ident = (dns_names(cert) or [common_name(cert)])[0]
    if not ident:
        raise IpsecError(f"{pem_path}: certificate has neither a dNSName nor a CN")
    return ident


class IpsecConfig:
    """What one triage IPsec connection is, from a policy-checked config (see agent.triage):
    {"mode": "ipsec", "cert": PEM path, "key": PEM path, "ca": PEM path, "remote_id": name,
    "ike_proposals": [...], "esp_proposals": [...]} plus the addressing given here."""

    def __init__(
        self,
        cfg: dict,
        local_addrs: list[str],
        remote_addrs: list[str],
        local_ts: list[str],
        remote_ts: list[str],
        name: str = "triage",
        child: str | None = None,
        local_id: str | None = None,
    ):
        self.cfg = check_policy(cfg)
        for f in ("cert", "key", "ca"):
            p = Path(self.cfg[f])
            if not p.is_file():
                raise IpsecError(f"{f} file {p} does not exist (make it with `dbch pki`)")
        self.name = name
        self.child = child or name
        self.local_addrs = list(local_addrs)
        self.remote_addrs = list(remote_addrs)
        self.local_ts = list(local_ts)
        self.remote_ts = list(remote_ts)
        self.local_id = local_id or cert_dns_id(self.cfg["cert"])
        self.remote_id = self.cfg["remote_id"]

    @classmethod
    def from_pki(
        cls,
        store: Pki,
        local: str,
        remote_id: str,
        local_addrs: list[str],
        remote_addrs: list[str],
        local_ts: list[str],
        remote_ts: list[str],
        **cfg,
    ) -> IpsecConfig:
        """A connection from a host_tools.security.pki store: `local` is this end's EUI-64 (a hub's
        gateway) or triage tool name; extra keyword arguments go into the policy config
        (ike_proposals, esp_proposals) or to the constructor (name, child, local_id)."""
        try:
            issued = store.device(normalize_eui(local))
        except PkiError:
            issued = store.tool(local)
        ctor = {k: cfg.pop(k) for k in ("name", "child", "local_id") if k in cfg}
        policy = {
            "mode": "ipsec",
            "cert": str(issued.cert_pem),
            "key": str(issued.key_pem),
            "ca": str(store.ca().cert_pem),
            "remote_id": remote_id,
            **cfg,
        }
        return cls(policy, local_addrs, remote_addrs, local_ts, remote_ts, **ctor)

    def _read(self, f: str) -> bytes:
        return Path(self.cfg[f]).read_bytes()

    # --- the configuration -------------------------------------------------------------------
    def conn_message(self) -> dict:
        """The vici load-conn message for this connection."""
        return {
            self.name: {
                "version": "2",
                "local_addrs": self.local_addrs,
                "remote_addrs": self.remote_addrs,
                "encap": "yes",
                "mobike": "no",
                "proposals": self.cfg["ike_proposals"],
                "local": {"auth": "pubkey", "id": self.local_id, "certs": [self._read("cert")]},
                "remote": {"auth": "pubkey", "id": self.remote_id, "cacerts": [self._read("ca")]},
                "children": {
                    self.child: {
                        "mode": "tunnel",
                        "local_ts": self.local_ts,
                        "remote_ts": self.remote_ts,
                        "esp_proposals": self.cfg["esp_proposals"],
                        "start_action": "none",
                        "dpd_action": "clear",
                    }
                },
            }
        }

    def swanctl_conf(self) -> str:
        """The same connection as swanctl.conf text (file names relative to SWANCTL_DIR)."""
        j = ", ".join
        return (
            "connections {\n"
            f"  {self.name} {{\n"
            "    version = 2\n"
            f"    local_addrs = {j(self.local_addrs)}\n"
            f"    remote_addrs = {j(self.remote_addrs)}\n"
            "    encap = yes\n"
            "    mobike = no\n"
            f"    proposals = {j(self.cfg['ike_proposals'])}\n"
            "    local {\n"
            "      auth = pubkey\n"
            f"      id = {self.local_id}\n"
            "      certs = triage.crt.pem\n"
            "    }\n"
            "    remote {\n"
            "      auth = pubkey\n"
            f"      id = {self.remote_id}\n"
            "      cacerts = triage-ca.crt.pem\n"
            "    }\n"
            "    children {\n"
            f"      {self.child} {{\n"
            "        mode = tunnel\n"
            f"        local_ts = {j(self.local_ts)}\n"
            f"        remote_ts = {j(self.remote_ts)}\n"
            f"        esp_proposals = {j(self.cfg['esp_proposals'])}\n"
            "        start_action = none\n"
            "        dpd_action = clear\n"
            "      }\n"
            "    }\n"
            "  }\n"
            "}\n"
        )

    def write_swanctl_dir(self, swanctl_dir: str | Path) -> Path:
        """SWANCTL_DIR layout: swanctl.conf, x509/, x509ca/, private/ (key 0600)."""
        d = Path(swanctl_dir)
        for sub in ("x509", "x509ca", "private"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "swanctl.conf").write_text(self.swanctl_conf())
        (d / "x509" / "triage.crt.pem").write_bytes(self._read("cert"))
        (d / "x509ca" / "triage-ca.crt.pem").write_bytes(self._read("ca"))
        write_file(d / "private" / "triage.key.pem", self._read("key"), secret=True)
        return d


# the kinds of certificate in the PKI: what `dbch` calls one, its directory, how to issue one
_HUBS = ("hub", "devices", "dbch pki device EUI")
_TOOLS = ("tool", "tools", "dbch pki tool NAME")


def _only(store: Pki, kind: tuple[str, str, str], option: str) -> str:
    """The label of the only certificate of `kind` in the PKI."""
    what, sub, issue = kind
    return store.only(sub, what, option, f"`{issue}`, or give {option}")


def choose_ids(store: Pki, responder: bool, local: str | None, remote: str | None) -> tuple[str, str]:
    """This end's certificate (a hub's EUI or a tool's name) and the peer identity to require,
    each the only one of its kind in the PKI unless given. A hub gateway initiates toward its
    Triage Tool; the Triage Tool responds (--responder)."""
    mine, theirs = (_TOOLS, _HUBS) if responder else (_HUBS, _TOOLS)
    if local is None:
        local = _only(store, mine, "--local")
    if remote is None:
        remote = cert_dns_id(store.dir / theirs[1] / _only(store, theirs, "--remote") / "cert.pem")
    return local, remote
