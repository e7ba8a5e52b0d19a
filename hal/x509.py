# The names a DER certificate asserts (subject CN, subjectAltName dNSNames), read without an
# X.509 library: the one thing the triage link needs of a certificate beyond the TLS stack's own
# chain check. Portable; ValueError on malformed DER.

_OID_CN = b"\x55\x04\x03"  # 2.5.4.3
_OID_SAN = b"\x55\x1d\x11"  # 2.5.29.17
_STRING_TAGS = (0x0C, 0x13, 0x14, 0x16, 0x1E)  # UTF8, Printable, T61, IA5, BMP(ASCII only)


def tlv(buf, i, end):
    # -> (tag, content start, content end); ValueError on anything malformed
    if i + 2 > end:
        raise ValueError("truncated DER")
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or i + k > end:
            raise ValueError("bad DER length")
        n = int.from_bytes(bytes(buf[i : i + k]), "big")
        i += k
    if i + n > end:
        raise ValueError("DER overrun")
    return tag, i, i + n


def _children(buf, start, end):
    i = start
    while i < end:
        tag, s, e = tlv(buf, i, end)
        yield tag, s, e
        i = e


def text(buf, tag, s, e):
    raw = bytes(buf[s:e])
    if tag == 0x1E:  # BMPString: keep the low bytes (ASCII names)
        raw = bytes([raw[i] for i in range(1, len(raw), 2)])
    return raw.decode()


def cert_names(der):
    """(common name or None, [SAN dNSNames]) of a DER certificate; ValueError if malformed."""
    buf = bytes(der)
    tag, s, e = tlv(buf, 0, len(buf))
    if tag != 0x30:
        raise ValueError("not a certificate")
    tag, s, e = tlv(buf, s, e)  # tbsCertificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    fields = list(_children(buf, s, e))
    if fields and fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature, issuer, validity, subject, spki, then [1] [2] [3]
    if len(fields) < 6:
        raise ValueError("short tbsCertificate")
    cn = None
    _, ss, se = fields[4]
    for _, rs, re in _children(buf, ss, se):  # RDN SETs
        for _, as_, ae in _children(buf, rs, re):  # AttributeTypeAndValue
            parts = list(_children(buf, as_, ae))
            if len(parts) == 2 and parts[0][0] == 0x06 and buf[parts[0][1] : parts[0][2]] == _OID_CN:
                vt, vs, ve = parts[1]
                if vt in _STRING_TAGS:
                    cn = text(buf, vt, vs, ve)
    dns = []
    for tag, xs, xe in fields[6:]:
        if tag != 0xA3:
            continue
        _, ls, le = tlv(buf, xs, xe)  # Extensions SEQUENCE
        for _, es, ee in _children(buf, ls, le):
            parts = list(_children(buf, es, ee))
            if not parts or parts[0][0] != 0x06 or buf[parts[0][1] : parts[0][2]] != _OID_SAN:
                continue
            _, os_, oe = parts[-1]  # extnValue OCTET STRING
            _, gs, ge = tlv(buf, os_, oe)  # GeneralNames SEQUENCE
            for gt, ns, ne in _children(buf, gs, ge):
                if gt == 0x82:  # [2] dNSName
                    dns.append(text(buf, 0x16, ns, ne))
    return cn, dns


def cert_identity(der):
    """The identity a certificate asserts: its first SAN dNSName, else its CN (RFC 6125)."""
    cn, dns = cert_names(der)
    return dns[0] if dns else cn


def identity_matches(der, expected):
    """True if the certificate names one of `expected` (case-insensitive; SAN wins over CN)."""
    try:
        cn, dns = cert_names(der)
    except (ValueError, IndexError, UnicodeError):
        return False
    names = dns if dns else ([cn] if cn else [])
    want = [x.lower() for x in expected]
    for n in names:
        if n.lower() in want:
            return True
    return False
