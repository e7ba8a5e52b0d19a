# The Triage System Interface (SEC G12): link policy as data + checks. Portable, no I/O: hal.tls
# runs the TLS link, host_tools.ipsec the IPsec one; both refuse what check_policy refuses. The
# security incidents a refused link makes are counted by agent.incidents.
#
# A link configuration is a dict:
#   TLS   {"mode": "tls", "cert": DER, "key": DER, "ca": DER, "peer": name or [names],
#          "verify": "required" (default), "min_version": "1.2" (default) or "1.3",
#          "ciphers": [suite names] (optional; each ECDHE + AEAD, or a TLS 1.3 suite)}
#   IPsec {"mode": "ipsec", "ike_version": 2, "local_auth": "pubkey", "remote_auth": "pubkey",
#          "cert": ..., "key": ..., "ca": ..., "remote_id": name,
#          "ike_proposals": ["aes256gcm16-prfsha384-ecp256"], "esp_proposals": ["aes256gcm16-ecp256"]}
# cert/key/ca are DER bytes on the device, or paths (str) on a host. Everything else - "plain",
# TLS without a client certificate, PSK, IKEv1, ESP/IKE without AEAD, AH - is refused.

from hal.compat import const
from hal.tls import TriageLinkError

_MIN_TLS = const(12)  # TLS 1.2 as 10 * major + minor

TLS_VERSIONS = {"1.2": 12, "1.3": 13, "tlsv1.2": 12, "tlsv1.3": 13, "1.0": 10, "1.1": 11, "tlsv1": 10, "tlsv1.1": 11}

# IKE/ESP encryption algorithm keywords (strongSwan names) that are AEAD.
_AEAD_PREFIXES = ("aes128gcm", "aes192gcm", "aes256gcm", "aes128ccm", "aes192ccm", "aes256ccm", "chacha20poly1305")
_WEAK_AEAD = ("gcm8", "ccm8")  # 64-bit ICV: not accepted


class PolicyError(TriageLinkError):
    """A link configuration the policy refuses; `field` names what is wrong."""

    def __init__(self, field, reason):
        super().__init__("policy", "{}: {}".format(field, reason))
        self.field = field
        self.reason = reason


def _present(cfg, field):
    v = cfg.get(field)
    if isinstance(v, (bytes, bytearray, str)) and len(v) > 0:
        return v
    raise PolicyError(field, "missing: mutual authentication needs this end's certificate, key and the CA")


def _names(cfg, field):
    v = cfg.get(field)
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise PolicyError(field, "missing: the peer's identity (EUI or name) must be checked")
    for n in v:
        if not isinstance(n, str) or not n:
            raise PolicyError(field, "not a name: {!r}".format(n))
    return list(v)


def _starts(s, prefixes):
    for p in prefixes:
        if s.startswith(p):
            return True
    return False


def _aead_suite(name):
    up = name.upper()
    if "CCM-8" in up or "CCM_8" in up or "CCM8" in up or "NULL" in up:
        return False
    tls13 = up.startswith("TLS_AES") or up.startswith("TLS_CHACHA20") or up.startswith("TLS1-3")
    aead = "GCM" in up or "CHACHA20" in up or "CCM" in up
    return aead and (tls13 or "ECDHE" in up) and "PSK" not in up


def _check_tls(cfg):
    if "psk" in cfg or "psk_identity" in cfg or "psk_key" in cfg:
        raise PolicyError("psk", "pre-shared keys are not certificate client authentication")
    for f in ("cert", "key", "ca"):
        _present(cfg, f)
    verify = cfg.get("verify", "required")
    if verify != "required":
        raise PolicyError(
            "verify", "must be 'required' (peer certificates in both directions), not {!r}".format(verify)
        )
    mv = cfg.get("min_version", "1.2")
    level = TLS_VERSIONS.get(str(mv).lower())
    if level is None:
        raise PolicyError("min_version", "unknown TLS version {!r}".format(mv))
    if level < _MIN_TLS:
        raise PolicyError("min_version", "TLS {} is below the 1.2 minimum".format(mv))
    ciphers = cfg.get("ciphers")
    if ciphers is not None:
        if isinstance(ciphers, str) or not ciphers:
            raise PolicyError("ciphers", "give a non-empty list of suite names")
        for c in ciphers:
            if not _aead_suite(c):
                raise PolicyError("ciphers", "{} is not an ECDHE AEAD suite".format(c))
    out = {
        "mode": "tls",
        "cert": cfg["cert"],
        "key": cfg["key"],
        "ca": cfg["ca"],
        "peer": _names(cfg, "peer"),
        "verify": "required",
        "min_version": "1.3" if level >= 13 else "1.2",
    }
    if ciphers is not None:
        out["ciphers"] = list(ciphers)
    return out


def proposal_is_aead(proposal, ike):
    """True if a strongSwan proposal ("aes256gcm16-prfsha384-ecp256") uses only AEAD ciphers.
    IKE proposals also need a PRF and a DH group; ESP ones a DH group is optional."""
    if not isinstance(proposal, str) or not proposal:
        return False
    parts = proposal.lower().split("-")
    enc = [p for p in parts if _starts(p, _AEAD_PREFIXES)]
    if not enc:
        return False
    for p in parts:
        if p in ("null", "aes128", "aes192", "aes256", "3des", "cast128", "blowfish", "des"):
            return False  # a non-AEAD cipher mixed in
        if p.startswith("aes") and p not in enc and not p.startswith("aesxcbc") and not p.startswith("aescmac"):
            return False
        for w in _WEAK_AEAD:
            if p.endswith(w):
                return False
    if ike:
        has_prf = False
        has_dh = False
        for p in parts:
            if p.startswith("prf"):
                has_prf = True
            if p.startswith("ecp") or p.startswith("modp") or p in ("curve25519", "x25519", "curve448", "x448"):
                has_dh = True
        return has_prf and has_dh
    return True


def _proposals(cfg, field, ike, default):
    props = cfg.get(field, default)
    if isinstance(props, str):
        props = [props]
    if not props:
        raise PolicyError(field, "no proposal")
    for p in props:
        if not proposal_is_aead(p, ike):
            raise PolicyError(field, "{!r} is not an AEAD proposal".format(p))
    return list(props)


DEFAULT_IKE_PROPOSALS = ("aes256gcm16-prfsha384-ecp256",)
DEFAULT_ESP_PROPOSALS = ("aes256gcm16-ecp256",)


def _check_ipsec(cfg):
    v = cfg.get("ike_version", 2)
    if v not in (2, "2", "ikev2"):
        raise PolicyError("ike_version", "only IKEv2 is allowed, not {!r}".format(v))
    for side in ("local_auth", "remote_auth"):
        a = cfg.get(side, "pubkey")
        if a not in ("pubkey", "ecdsa", "ecdsa-256"):
            raise PolicyError(side, "must be certificate (pubkey) authentication, not {!r}".format(a))
    if "psk" in cfg or "secret" in cfg:
        raise PolicyError("psk", "pre-shared keys are not certificate authentication")
    if cfg.get("ah_proposals"):
        raise PolicyError("ah_proposals", "AH gives no confidentiality: use ESP with AEAD")
    for f in ("cert", "key", "ca"):
        _present(cfg, f)
    return {
        "mode": "ipsec",
        "ike_version": 2,
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": cfg["cert"],
        "key": cfg["key"],
        "ca": cfg["ca"],
        "remote_id": _names(cfg, "remote_id")[0],
        "ike_proposals": _proposals(cfg, "ike_proposals", True, DEFAULT_IKE_PROPOSALS),
        "esp_proposals": _proposals(cfg, "esp_proposals", False, DEFAULT_ESP_PROPOSALS),
    }


def check_policy(cfg):
    """The normalised configuration if SEC G12 allows it, else PolicyError naming the field."""
    if not isinstance(cfg, dict):
        raise PolicyError("config", "not a dict")
    mode = cfg.get("mode")
    if mode == "tls":
        return _check_tls(cfg)
    if mode == "ipsec":
        return _check_ipsec(cfg)
    if mode is None:
        raise PolicyError("mode", "missing: must be 'tls' (with client authentication) or 'ipsec'")
    raise PolicyError("mode", "{!r} refused: only 'tls' with client authentication or 'ipsec'".format(mode))


def refusal(cfg):
    """None if the configuration is allowed, else the reason (for reports, no exception)."""
    try:
        check_policy(cfg)
        return None
    except PolicyError as e:
        return str(e)


def tls_endpoint(cfg, server_side, timeout=10):
    """A hal.tls endpoint for an allowed TLS configuration (DER bytes), else PolicyError."""
    c = check_policy(cfg)
    if c["mode"] != "tls":
        raise PolicyError("mode", "not a TLS configuration")
    from hal import tls

    return tls.TlsEndpoint(
        server_side, c["cert"], c["key"], c["ca"], c["peer"], timeout, c["min_version"], c.get("ciphers")
    )
