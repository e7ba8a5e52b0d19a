"""Failed IKE authentications, found in charon's vici events ("log", "ike-updown", "ike-update")."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import OrderedDict

from agent import incidents
from host_tools.security.ipsec.vici_session import as_text

# the incident kinds a failed IKE authentication is counted under
REFUSED_PEER = incidents.AUTH_FAILED  # this end refused the peer's authentication
REFUSED_BY_PEER = incidents.LINK_REFUSED  # the peer refused this end's


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


_PEER_CONFIGS = re.compile(r"^looking for peer configs matching (\S+)\[(.*)\]\.\.\.(\S+)\[(.*)\]$")
_RECEIVED = re.compile(r"^received packet: from (\S+)\[\d+\]")
_INITIATING = re.compile(r"^initiating IKE_SA \S+ to (\S+)$")
_PEER_CERT = re.compile(r'^received end entity cert "(.*)"$')
_REASON = re.compile(
    r"^(no trusted .* public key found for .*|subject certificate invalid.*|no matching peer config found"
    r"|constraint check failed.*|signature validation failed.*|certificate was revoked.*"
    r"|no issuer certificate found for .*|authentication of .* failed.*|.*config unacceptable.*)$"
)
_WE_REFUSE = re.compile(r"^generating \S+ (request|response) \d+ \[.*\bN\(AUTH_FAILED\)")
_THEY_REFUSE = re.compile(
    r"^(parsed \S+ (request|response) \d+ \[.*\bN\(AUTH_FAILED\)|received AUTHENTICATION_FAILED notify)"
)
_KEEP_SAS = 512


class AuthFailures:
    """Finds failed IKE authentications in charon's vici events: feed() every "log",
    "ike-updown" and "ike-update" event, call due() now and then; each returns the failures
    that are complete, one per IKE_SA.

    What charon logs while an IKE_SA is set up (level 1, which vici always sends) is kept per
    IKE_SA (its uniqueid): the peer's address and identity, its certificate, the reasons given.
    An AUTHENTICATION_FAILED notify this end generates means it refused the peer; one it
    parses, that the peer refused it. Log events reach vici listeners through a queue, so the
    "ike-updown" of the failed IKE_SA (which names the peer's identity, the only place that does
    on an initiator) may come before or after those log lines: a failure is complete when that
    event has come, or `grace` seconds after the notify. Unique ids start again at 1 when
    charon restarts: use a new AuthFailures then."""

    def __init__(self, grace: float = 1.0) -> None:
        self.grace = grace
        self._sas: OrderedDict[str, dict] = OrderedDict()
        self._done: OrderedDict[str, bool] = OrderedDict()
        self._pending: OrderedDict[str, tuple[float, dict]] = OrderedDict()

    def _sa(self, uid: str) -> dict:
        sa = self._sas.get(uid)
        if sa is None:
            sa = self._sas[uid] = {"reasons": []}
            while len(self._sas) > _KEEP_SAS:
                self._sas.popitem(last=False)
        return sa

    def feed(self, label: str, event: dict) -> list[dict]:
        if label == "log":
            return self._log(event)
        complete = []
        if label in ("ike-updown", "ike-update"):
            for ike_name, ike in event.items():
                if not (isinstance(ike, dict) and "uniqueid" in ike):
                    continue
                uid = as_text(ike["uniqueid"])
                sa = self._sa(uid)
                if as_text(ike_name) != "(unnamed)":
                    sa["ike"] = as_text(ike_name)
                for key, name in (("remote-host", "remote_host"), ("remote-id", "remote_id")):
                    v = as_text(ike.get(key, b""))
                    if v and v != "%any":
                        sa[name] = v
                if label == "ike-updown":
                    sa["updown"] = True
                    if uid in self._pending:
                        complete.append(self._complete(uid))
        return complete

    def due(self, now: float | None = None, everything: bool = False) -> list[dict]:
        """The failures whose grace period is over (all of them with everything=True)."""
        now = time.monotonic() if now is None else now
        late = [uid for uid, (t, _) in self._pending.items() if everything or now - t >= self.grace]
        return [self._complete(uid) for uid in late]

    def _complete(self, uid: str) -> dict:
        _t, failure = self._pending.pop(uid)
        return self._fill(failure, self._sa(uid))

    @staticmethod
    def _fill(failure: dict, sa: dict) -> dict:
        failure.update(
            ike=sa.get("ike"),
            remote_host=sa.get("remote_host"),
            remote_id=sa.get("remote_id"),
            peer_cert=sa.get("peer_cert"),
            reason="; ".join(sa["reasons"][-3:]) or failure["reason"],
        )
        return failure

    def _log(self, event: dict) -> list[dict]:
        msg = as_text(event.get("msg", b"")).strip()
        uid = as_text(event["ikesa-uniqueid"]) if "ikesa-uniqueid" in event else None
        sa = self._sa(uid) if uid is not None else {"reasons": []}
        if "ikesa-name" in event and as_text(event["ikesa-name"]) != "(unnamed)":
            sa["ike"] = as_text(event["ikesa-name"])
        m = _PEER_CONFIGS.match(msg)
        if m:
            sa["remote_host"], sa["remote_id"] = m.group(3), m.group(4)
        elif (m := _RECEIVED.match(msg) or _INITIATING.match(msg)) is not None:
            sa.setdefault("remote_host", m.group(1))
        elif (m := _PEER_CERT.match(msg)) is not None:
            sa["peer_cert"] = m.group(1)
        elif _REASON.match(msg):
            if msg not in sa["reasons"]:
                sa["reasons"].append(msg)
        if _WE_REFUSE.match(msg):
            kind, what = REFUSED_PEER, "refused the peer"
        elif _THEY_REFUSE.match(msg):
            kind, what = REFUSED_BY_PEER, "refused by the peer"
        else:
            return []
        failure = {"kind": kind, "what": what, "uniqueid": uid, "reason": msg, "at": _now()}
        if uid is None:
            return [self._fill(failure, sa)]
        if uid in self._done:
            return []
        self._done[uid] = True
        while len(self._done) > _KEEP_SAS:
            self._done.popitem(last=False)
        self._pending[uid] = (time.monotonic(), failure)
        return [self._complete(uid)] if sa.get("updown") else []
