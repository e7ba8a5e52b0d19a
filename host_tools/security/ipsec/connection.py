"""A triage IPsec connection driven over vici: load it into charon, initiate it, wait for its
CHILD_SA, terminate and unload it."""

from __future__ import annotations

import time

from host_tools.security.ipsec import IpsecError
from host_tools.security.ipsec.config import IpsecConfig
from host_tools.security.ipsec.sas import ChildStatus, child_status
from host_tools.security.ipsec.vici_session import as_text


class IpsecConnection(IpsecConfig):
    """One triage IPsec connection (see IpsecConfig for what it is made of) in a charon, through
    a vici session: vici_session() on a strongSwan service's socket, or Charon.session()."""

    def load(self, session) -> None:
        """Load the CA, this end's certificate and key, and the connection."""
        try:
            session.load_cert({"type": "X509", "flag": "CA", "data": self._read("ca")})
            session.load_cert({"type": "X509", "flag": "NONE", "data": self._read("cert")})
            session.load_key({"type": "any", "data": self._read("key")})
            session.load_conn(self.conn_message())
        except Exception as e:
            raise IpsecError(f"loading {self.name} into charon failed: {e}") from e

    def initiate(self, session, timeout: float = 15.0) -> list[str]:
        """Start IKE + the CHILD_SA; the daemon's log lines. IpsecError if it fails."""
        log: list[str] = []
        try:
            for msg in session.initiate({"child": self.child, "ike": self.name, "timeout": int(timeout * 1000)}):
                log.append(as_text(msg.get("msg", b"")))
        except Exception as e:
            tail = "; ".join(log[-4:])
            raise IpsecError(f"initiating {self.name} failed: {e} ({tail})") from e
        return log

    def status(self, session) -> ChildStatus | None:
        """The CHILD_SA of this connection, or None when there is none."""
        return child_status(session, self.name, self.child)

    def wait_installed(self, session, timeout: float = 15.0) -> ChildStatus:
        """Wait for an INSTALLED CHILD_SA with an AEAD cipher; IpsecError otherwise."""
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(session)
            if st is not None and st.installed:
                if not st.aead:
                    raise IpsecError(f"{self.name}: CHILD_SA uses {st.encr_alg}, not an AEAD cipher")
                return st
            time.sleep(0.1)
        raise IpsecError(f"{self.name}: no INSTALLED CHILD_SA after {timeout:.0f} s (last: {st})")

    def up(self, session, timeout: float = 15.0) -> ChildStatus:
        """load + initiate + wait_installed."""
        self.load(session)
        self.initiate(session, timeout)
        return self.wait_installed(session, timeout)

    def terminate(self, session, timeout: float = 10.0) -> None:
        terminate(session, self.name, timeout)

    def down(self, session) -> None:
        """Tear the connection down: terminate its SAs and unload it."""
        self.terminate(session)
        self.unload(session)

    def unload(self, session) -> None:
        unload(session, self.name)


def terminate(session, name: str, timeout: float = 10.0) -> bool:
    """Terminate the IKE_SAs (and so the CHILD_SAs) of connection `name`; False if it had none."""
    try:
        for _ in session.terminate({"ike": name, "timeout": int(timeout * 1000)}):
            pass
    except Exception as e:  # nothing to terminate is not an error here
        if "no matching" not in str(e).lower():
            raise IpsecError(f"terminating {name} failed: {e}") from e
        return False
    return True


def unload(session, name: str) -> None:
    try:
        session.unload_conn({"name": name})
    except Exception as e:
        raise IpsecError(f"unloading {name} failed: {e}") from e


def loaded_conns(session) -> list[str]:
    """The names of the connections loaded into charon."""
    return [as_text(c) for c in session.get_conns().get("conns", [])]
