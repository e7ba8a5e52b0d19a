import unittest
from binascii import unhexlify

from agent import incidents, triage
from hal import tls, x509

# A hub certificate made by host_tools.security.pki (CN and SAN dNSName "00-1B-C5-0C-00-00-12-34").
DEVICE_CERT = unhexlify(
    "308201dd30820184a0030201020214607179f2421721e2a6d8f24f7690c66fd48e4dda300a06082a8648ce3d04030230"
    "153113301106035504030c0a66697874757265204341301e170d3235303130313030303030305a170d34353031303130"
    "30303030305a30223120301e06035504030c1730302d31422d43352d30432d30302d30302d31322d3334305930130607"
    "2a8648ce3d020106082a8648ce3d03010703420004678c8c6fbccf97350c5435a9390c0a362caf050be74fbf1751e17e"
    "cdacbc4dfaca946f262fe05515c9b4ed4c8ec0478bf9a009c29ee93bc74381347ead7526afa381a43081a1300c060355"
    "1d130101ff04023000300e0603551d0f0101ff040403020780301d0603551d250416301406082b060105050703020608"
    "2b0601050507030130220603551d11041b3019821730302d31422d43352d30432d30302d30302d31322d3334301d0603"
    "551d0e041604144dd415640491573f6e23df8994f9928ef11f8eeb301f0603551d23041830168014331e30caf5de8d12"
    "ab30903b6c0716a418d638be300a06082a8648ce3d040302034700304402201dce5c63fe0e920c28a9a84800b1fab710"
    "53a78b274353101067f69d6ff031e302206d8ae699ffeeef81bfecca91b787270a4bc2bc760c23bba763d1b69442bb03"
    "7d"
)
# A self-signed v1-style certificate with O=dbch, CN=cn-only-tool and no extensions.
CN_ONLY_CERT = unhexlify(
    "308201383081dfa003020102020107300a06082a8648ce3d0403023026310d300b060355040a0c046462636831153013"
    "06035504030c0c636e2d6f6e6c792d746f6f6c301e170d3235303130313030303030305a170d34353031303130303030"
    "30305a3026310d300b060355040a0c04646263683115301306035504030c0c636e2d6f6e6c792d746f6f6c3059301306"
    "072a8648ce3d020106082a8648ce3d0301070342000434e99182c02b0f72744a619160b85c2db5024328ba868d0eae8d"
    "ce52e78d8c6031f7acbe55b4d28a1dd0de84f287ff01f525ae11a30ef405fe980e432c69eb9d300a06082a8648ce3d04"
    "0302034800304502204be0b8f2ee0a1be9e3bf9a1148b6d1854125d61c204659c2e81523601aa7acc00221009d9f456a"
    "e180f5421997f2214251ab33d3f2e7308a60da5e740d9ed7cd621209"
)
EUI = "00-1B-C5-0C-00-00-12-34"


def good_tls(**changes):
    cfg = {"mode": "tls", "cert": b"\x30\x01", "key": b"\x30\x02", "ca": b"\x30\x03", "peer": "triage-1"}
    for k, v in changes.items():
        if v is None:
            del cfg[k]
        else:
            cfg[k] = v
    return cfg


def good_ipsec(**changes):
    cfg = {
        "mode": "ipsec",
        "ike_version": 2,
        "local_auth": "pubkey",
        "remote_auth": "pubkey",
        "cert": "/pki/devices/x/cert.pem",
        "key": "/pki/devices/x/key.pem",
        "ca": "/pki/ca/ca.crt.pem",
        "remote_id": "triage-1",
        "ike_proposals": ["aes256gcm16-prfsha384-ecp256"],
        "esp_proposals": ["aes256gcm16-ecp256", "aes128gcm16"],
    }
    for k, v in changes.items():
        if v is None:
            del cfg[k]
        else:
            cfg[k] = v
    return cfg


class TlsPolicy(unittest.TestCase):
    def test_tls_with_client_auth_is_accepted_and_normalised(self):
        c = triage.check_policy(good_tls())
        self.assertEqual(c["mode"], "tls")
        self.assertEqual(c["peer"], ["triage-1"])
        self.assertEqual(c["verify"], "required")
        self.assertEqual(c["min_version"], "1.2")
        c = triage.check_policy(good_tls(min_version="TLSv1.3", peer=[EUI, "other"]))
        self.assertEqual(c["min_version"], "1.3")
        self.assertEqual(c["peer"], [EUI, "other"])

    def test_aead_cipher_lists_are_accepted(self):
        ok = ["TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_AES_256_GCM_SHA384"]
        self.assertEqual(triage.check_policy(good_tls(ciphers=ok))["ciphers"], ok)

    def test_refusals_name_the_field(self):
        cases = [
            (good_tls(mode="plain"), "mode"),
            (good_tls(mode=None), "mode"),
            (good_tls(mode="TLS"), "mode"),
            (good_tls(cert=None), "cert"),
            (good_tls(key=b""), "key"),
            (good_tls(ca=None), "ca"),
            (good_tls(verify="none"), "verify"),
            (good_tls(verify="optional"), "verify"),
            (good_tls(min_version="1.1"), "min_version"),
            (good_tls(min_version="1.0"), "min_version"),
            (good_tls(min_version="SSLv3"), "min_version"),
            (good_tls(peer=None), "peer"),
            (good_tls(peer=[]), "peer"),
            (good_tls(peer=[""]), "peer"),
            (good_tls(psk=b"secret"), "psk"),
            (good_tls(ciphers=["TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256"]), "ciphers"),
            (good_tls(ciphers=["TLS-RSA-WITH-AES-128-GCM-SHA256"]), "ciphers"),
            (good_tls(ciphers=["TLS-PSK-WITH-AES-128-GCM-SHA256"]), "ciphers"),
            (good_tls(ciphers=["TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"]), "ciphers"),
            (good_tls(ciphers="TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"), "ciphers"),
            (good_tls(ciphers=[]), "ciphers"),
        ]
        for cfg, field in cases:
            with self.subTest(field=field, cfg=cfg.get(field)):
                with self.assertRaises(triage.PolicyError) as cm:
                    triage.check_policy(cfg)
                self.assertEqual(cm.exception.field, field)
                self.assertEqual(cm.exception.kind, "policy")
                self.assertIsNotNone(triage.refusal(cfg))

    def test_policy_error_is_a_link_error(self):
        with self.assertRaises(tls.TriageLinkError):
            triage.check_policy("tls")
        self.assertIsNone(triage.refusal(good_tls()))

    def test_tls_endpoint_refuses_what_the_policy_refuses(self):
        with self.assertRaises(triage.PolicyError):
            triage.tls_endpoint(good_tls(verify="none"), False)
        with self.assertRaises(triage.PolicyError):
            triage.tls_endpoint(good_ipsec(), False)


class IpsecPolicy(unittest.TestCase):
    def test_ikev2_certificates_aead_is_accepted(self):
        c = triage.check_policy(good_ipsec())
        self.assertEqual(c["ike_version"], 2)
        self.assertEqual(c["esp_proposals"], ["aes256gcm16-ecp256", "aes128gcm16"])
        c = triage.check_policy(good_ipsec(ike_proposals=None, esp_proposals=None))
        self.assertEqual(c["ike_proposals"], list(triage.DEFAULT_IKE_PROPOSALS))
        self.assertEqual(c["esp_proposals"], list(triage.DEFAULT_ESP_PROPOSALS))

    def test_refusals(self):
        cases = [
            (good_ipsec(ike_version=1), "ike_version"),
            (good_ipsec(ike_version="ikev1"), "ike_version"),
            (good_ipsec(local_auth="psk"), "local_auth"),
            (good_ipsec(remote_auth="eap-mschapv2"), "remote_auth"),
            (good_ipsec(psk="s3cret"), "psk"),
            (good_ipsec(cert=None), "cert"),
            (good_ipsec(key=""), "key"),
            (good_ipsec(ca=None), "ca"),
            (good_ipsec(remote_id=None), "remote_id"),
            (good_ipsec(ah_proposals=["sha256"]), "ah_proposals"),
            (good_ipsec(esp_proposals=["aes256-sha256"]), "esp_proposals"),
            (good_ipsec(esp_proposals=["null-sha256"]), "esp_proposals"),
            (good_ipsec(esp_proposals=["aes256gcm8"]), "esp_proposals"),
            (good_ipsec(esp_proposals=["aes256gcm16-aes256-sha256"]), "esp_proposals"),
            (good_ipsec(esp_proposals=[]), "esp_proposals"),
            (good_ipsec(ike_proposals=["aes256-sha256-modp2048"]), "ike_proposals"),
            (good_ipsec(ike_proposals=["aes256gcm16-ecp256"]), "ike_proposals"),  # no PRF
            (good_ipsec(ike_proposals=["aes256gcm16-prfsha384"]), "ike_proposals"),  # no DH group
        ]
        for cfg, field in cases:
            with self.subTest(field=field):
                with self.assertRaises(triage.PolicyError) as cm:
                    triage.check_policy(cfg)
                self.assertEqual(cm.exception.field, field)

    def test_proposal_checker(self):
        self.assertTrue(triage.proposal_is_aead("aes256gcm16-prfsha384-ecp256", True))
        self.assertTrue(triage.proposal_is_aead("chacha20poly1305-prfsha256-curve25519", True))
        self.assertTrue(triage.proposal_is_aead("aes128gcm16-ecp256", False))
        self.assertFalse(triage.proposal_is_aead("aes128-sha256", False))
        self.assertFalse(triage.proposal_is_aead("", False))
        self.assertFalse(triage.proposal_is_aead(None, False))


class CertNames(unittest.TestCase):
    def test_device_certificate_names(self):
        cn, dns = x509.cert_names(DEVICE_CERT)
        self.assertEqual(cn, EUI)
        self.assertEqual(dns, [EUI])
        self.assertEqual(x509.cert_identity(DEVICE_CERT), EUI)

    def test_cn_only_certificate(self):
        self.assertEqual(x509.cert_names(CN_ONLY_CERT), ("cn-only-tool", []))
        self.assertTrue(x509.identity_matches(CN_ONLY_CERT, ["cn-only-tool"]))
        self.assertFalse(x509.identity_matches(CN_ONLY_CERT, ["dbch"]))  # O= is not an identity

    def test_matching(self):
        self.assertTrue(x509.identity_matches(DEVICE_CERT, [EUI]))
        self.assertTrue(x509.identity_matches(DEVICE_CERT, ["x", EUI.lower()]))
        self.assertFalse(x509.identity_matches(DEVICE_CERT, ["00-1B-C5-0C-00-00-12-35"]))
        self.assertFalse(x509.identity_matches(DEVICE_CERT, []))

    def test_bmp_string_names(self):
        self.assertEqual(x509.text(b"\x00t\x00o\x00o\x00l", 0x1E, 0, 8), "tool")

    def test_malformed_certificates_are_refused(self):
        for bad in (b"", b"\x30", b"\x30\x05\x30\x03", DEVICE_CERT[:100], b"\x02\x01\x00", b"\x30\x84\xff\xff\xff\xff"):
            with self.subTest(n=len(bad)):
                with self.assertRaises(ValueError):
                    x509.cert_names(bad)
                self.assertFalse(x509.identity_matches(bad, [EUI]))

    def test_negotiated_parameters(self):
        tls.check_negotiated("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
        tls.check_negotiated("TLSv1.3", "TLS_AES_256_GCM_SHA384")
        tls.check_negotiated("TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256")
        tls.check_negotiated(None, None)
        for version, suite in (
            ("TLSv1.1", "ECDHE-ECDSA-AES256-GCM-SHA384"),
            ("TLSv1", None),
            ("TLSv1.2", "ECDHE-ECDSA-AES256-SHA384"),
            ("TLSv1.2", "AES256-GCM-SHA384"),
            ("TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"),
            ("TLSv1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
            ("TLSv1.2", "TLS-PSK-WITH-AES-128-GCM-SHA256"),
        ):
            with self.subTest(version=version, suite=suite):
                with self.assertRaises(tls.TriageLinkError) as cm:
                    tls.check_negotiated(version, suite)
                self.assertEqual(cm.exception.kind, "weak")

    def test_endpoint_needs_der_and_a_peer(self):
        with self.assertRaises(tls.TriageLinkError) as cm:
            tls.client(DEVICE_CERT, b"\x30\x00", DEVICE_CERT, [])
        self.assertEqual(cm.exception.kind, "config")
        with self.assertRaises(tls.TriageLinkError) as cm:
            tls.client(b"-----BEGIN CERTIFICATE-----", b"\x30\x00", DEVICE_CERT, "triage-1")
        self.assertIn("PEM", cm.exception.detail)
        with self.assertRaises(tls.TriageLinkError) as cm:
            tls.server(DEVICE_CERT, None, DEVICE_CERT, "triage-1")
        self.assertEqual(cm.exception.kind, "config")


class IncidentRecorder(unittest.TestCase):
    def setUp(self):
        self.sent = []
        self.inc = incidents.Incidents(self.sent.append, thresholds={incidents.AUTH_FAILED: 3})

    def test_counts_by_kind(self):
        self.inc.record(incidents.AUTH_FAILED)
        self.inc.record(incidents.BAD_RECORD)
        self.inc.record(incidents.AUTH_FAILED)
        self.assertEqual(self.inc.count(incidents.AUTH_FAILED), 2)
        self.assertEqual(self.inc.count(incidents.BAD_RECORD), 1)
        self.assertEqual(self.inc.count(incidents.TAMPERED_IMAGE), 0)
        self.assertFalse(self.inc.open)
        self.assertEqual(self.sent, [])

    def test_major_incident_is_notified_once_while_recipients_know(self):
        for _ in range(2):
            self.assertFalse(self.inc.record(incidents.AUTH_FAILED, "bad cert"))
        self.assertTrue(self.inc.record(incidents.AUTH_FAILED, "bad cert"))
        self.assertEqual(len(self.sent), 1)
        report = self.sent[0]
        self.assertEqual(report["incident"], 1)
        self.assertEqual(report["trigger"], incidents.AUTH_FAILED)
        self.assertEqual(report["counts"][incidents.AUTH_FAILED], 3)
        for _ in range(20):
            self.inc.record(incidents.AUTH_FAILED)
        self.inc.record(incidents.TAMPERED_IMAGE)
        self.assertEqual(len(self.sent), 1)  # G3.5AA: they already know
        self.assertEqual(self.inc.count(incidents.AUTH_FAILED), 23)

    def test_close_clears_the_flag_and_a_new_incident_is_notified(self):
        self.inc.record(incidents.TAMPERED_IMAGE)  # threshold 1
        self.assertEqual(len(self.sent), 1)
        self.inc.close()
        self.assertFalse(self.inc.open)
        self.assertFalse(self.inc.notified)
        self.inc.record(incidents.AUTH_FAILED)
        self.inc.record(incidents.AUTH_FAILED)
        self.assertEqual(len(self.sent), 1)  # window restarted at close
        self.inc.record(incidents.AUTH_FAILED)
        self.assertEqual(len(self.sent), 2)
        self.assertEqual(self.sent[1]["incident"], 2)
        self.assertEqual(self.sent[1]["trigger"], incidents.AUTH_FAILED)

    def test_failed_notification_stays_pending_and_is_retried(self):
        calls = []

        def flaky(report):
            calls.append(report)
            if len(calls) == 1:
                raise OSError("outbox full")
            return True

        inc = incidents.Incidents(flaky)
        inc.record(incidents.TAMPERED_IMAGE)
        self.assertTrue(inc.open)
        self.assertFalse(inc.notified)
        self.assertTrue(inc.flush())
        self.assertTrue(inc.notified)
        inc.record(incidents.TAMPERED_IMAGE)
        self.assertEqual(len(calls), 2)

    def test_notify_returning_false_is_pending(self):
        answers = [False, None]
        inc = incidents.Incidents(lambda r: answers.pop(0))
        inc.record(incidents.TAMPERED_IMAGE)
        self.assertFalse(inc.notified)
        inc.record(incidents.TAMPERED_IMAGE)  # retried on the next event
        self.assertTrue(inc.notified)
        self.assertEqual(answers, [])

    def test_without_a_callback_nothing_is_notified(self):
        inc = incidents.Incidents()
        inc.record(incidents.TAMPERED_IMAGE)
        self.assertTrue(inc.open)
        self.assertFalse(inc.flush())

    def test_snapshot_restore_keeps_the_flag_across_reboot(self):
        self.inc.record(incidents.TAMPERED_IMAGE)
        state = self.inc.snapshot()
        again = []
        inc2 = incidents.Incidents(again.append)
        inc2.restore(state)
        inc2.record(incidents.TAMPERED_IMAGE)
        self.assertEqual(again, [])
        self.assertEqual(inc2.count(incidents.TAMPERED_IMAGE), 2)
        self.assertEqual(inc2.number, 1)

    def test_link_errors_map_to_kinds(self):
        self.assertEqual(self.inc.record_link_error(tls.TriageLinkError("identity", "x")), incidents.AUTH_FAILED)
        self.assertEqual(self.inc.record_link_error(tls.TriageLinkError("auth", "x")), incidents.AUTH_FAILED)
        self.assertEqual(self.inc.record_link_error(tls.TriageLinkError("record", "x")), incidents.BAD_RECORD)
        self.assertEqual(self.inc.record_link_error(tls.TriageLinkError("protocol", "x")), incidents.LINK_REFUSED)
        self.assertIsNone(self.inc.record_link_error(tls.TriageLinkError("config", "x")))
        self.assertIsNone(self.inc.record_link_error(tls.TriageLinkError("timeout", "x")))
        self.assertEqual(self.inc.count(incidents.AUTH_FAILED), 2)

    def test_a_connection_that_went_away_is_no_incident(self):
        # What hubs and the Triage Tool saw (CPython/OpenSSL and MicroPython/mbedTLS) when the
        # other end was busy, restarting or flooded: closed, reset or refused, before any
        # authentication. None of it is counted, however often it happens.
        gone = [
            ("protocol", "SSLEOFError(8, [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol)"),
            ("protocol", "ConnectionResetError(104, Connection reset by peer)"),
            ("protocol", "BrokenPipeError(32, Broken pipe)"),
            ("protocol", "OSError(104)"),
            ("protocol", "OSError(32)"),
            ("protocol", "OSError(-104)"),
            ("protocol", "OSError(-29312, MBEDTLS_ERR_SSL_CONN_EOF)"),
            ("protocol", "OSError(-80, MBEDTLS_ERR_NET_CONN_RESET)"),
            ("protocol", "connect to 127.0.0.1:4460: ConnectionRefusedError(111, Connection refused)"),
            ("protocol", "OSError(113)"),  # EHOSTUNREACH
            ("record", "ConnectionResetError(104, Connection reset by peer)"),
            ("record", "SSLZeroReturnError(6, TLS/SSL connection has been closed (EOF))"),
            ("timeout", "TimeoutError(timed out)"),
            ("timeout", "OSError(110)"),
        ]
        inc = incidents.Incidents(self.sent.append, thresholds={incidents.LINK_REFUSED: 1, incidents.BAD_RECORD: 1})
        for kind, detail in gone:
            with self.subTest(kind=kind, detail=detail):
                err = tls.TriageLinkError(kind, detail)
                self.assertTrue(incidents.link_gone(err))
                self.assertIsNone(incidents.incident_kind(err))
                self.assertIsNone(inc.record_link_error(err))
        self.assertEqual(inc.totals, {})
        self.assertFalse(inc.open)
        self.assertEqual(self.sent, [])

    def test_a_refusal_of_our_certificate_is_an_authentication_failure(self):
        auth = [
            ("auth", "SSLCertVerificationError(1, [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed)"),
            ("identity", "peer is 'triage-2', expected triage-1"),
            # the tool's alert: in TLS 1.3 after our side of the handshake, so on the first read
            ("record", "SSLError(1, [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:2580))"),
            ("record", "SSLError(1, [SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate)"),
            ("record", "SSLError(1, [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required)"),
            ("protocol", "SSLError(1, [SSL: TLSV1_ALERT_ACCESS_DENIED] tlsv1 alert access denied)"),
            ("protocol", "OSError(-30592, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)"),  # mbedTLS: in the handshake
        ]
        for kind, detail in auth:
            with self.subTest(kind=kind, detail=detail):
                err = tls.TriageLinkError(kind, detail)
                self.assertFalse(incidents.link_gone(err))
                self.assertEqual(incidents.incident_kind(err), incidents.AUTH_FAILED)
        for _ in range(3):
            self.inc.record_link_error(tls.TriageLinkError(*auth[2]))
        self.assertTrue(self.inc.open)
        self.assertEqual(self.sent[0]["trigger"], incidents.AUTH_FAILED)

    def test_a_peer_that_speaks_but_breaks_the_policy_is_still_counted(self):
        cases = [
            ("protocol", "SSLError(1, [SSL: WRONG_VERSION_NUMBER] wrong version number)", incidents.LINK_REFUSED),
            ("protocol", "SSLError(1, [SSL: UNSUPPORTED_PROTOCOL] unsupported protocol)", incidents.LINK_REFUSED),
            ("protocol", "SSLError(1, [SSL: HTTP_REQUEST] http request)", incidents.LINK_REFUSED),
            ("weak", "protocol version TLSv1.1 (need TLSv1.2 or TLSv1.3)", incidents.LINK_REFUSED),
            ("record", "SSLError(1, [SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record mac)", incidents.BAD_RECORD),
            ("record", "OSError(-29184, MBEDTLS_ERR_SSL_INVALID_MAC)", incidents.BAD_RECORD),
            ("record", "OSError(-30592, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)", incidents.BAD_RECORD),
            ("policy", "verify: must be 'required'", incidents.POLICY_VIOLATION),
        ]
        for kind, detail, want in cases:
            with self.subTest(kind=kind, detail=detail):
                err = tls.TriageLinkError(kind, detail)
                self.assertFalse(incidents.link_gone(err))
                self.assertEqual(incidents.incident_kind(err), want)
        self.assertIsNone(incidents.incident_kind(tls.TriageLinkError("config", "cert must be DER")))
        self.assertFalse(incidents.link_gone(tls.TriageLinkError("config", "OSError(104)")))
        self.assertIsNone(incidents.incident_kind(ValueError("not a link error")))

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            self.inc.record("")
        with self.assertRaises(ValueError):
            self.inc.record(None)
        with self.assertRaises(ValueError):
            incidents.Incidents(thresholds={incidents.AUTH_FAILED: 0})
