"""Host side of firmware updates: signing with cryptography and verifying with the device's code,
the resumable sender against a simulated hub (with link loss), the `dbch firmware` commands,
`dbch flash --signing-key` formats, and the CPL check (N49-N52) with its DUIS rendering."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent import boot
from agent import fw_image as image
from host_tools.cli import main
from host_tools.cli.firmware import Progress
from host_tools.duis.schema import ENV_SCHEMA_DIR, validate
from host_tools.firmware import cpl, flash, sign, stage
from host_tools.firmware import images as firmware
from host_tools.firmware.images import FirmwareInputError
from host_tools.link.client import AgentTimeout, LinkError, Response

ROOT = Path(__file__).resolve().parents[2]

from tests.kits import fwkit  # noqa: E402


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def write_key(path: Path, key, der: bool = False) -> Path:
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    path.write_bytes(key.private_bytes(enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def sim_image(version="5.0", size=2000) -> bytes:
    return image.build(version, "sim", fwkit.files(version, 4, size))


# -- signing and verifying ------------------------------------------------------------------------
def test_cryptography_signature_verifies_with_device_code(key):
    content = sim_image()
    data = content + image.trailer(sign.sign_content(content, key))
    res = sign.verify_image(data, sign.public_point(key), board="sim")
    assert res["valid"] and res["signed"]
    assert res["hash"] == hashlib.sha256(content).digest() == firmware.firmware_hash(content)
    other = ec.generate_private_key(ec.SECP256R1())
    assert not sign.verify_image(data, sign.public_point(other))["valid"]
    assert not sign.verify_image(content, sign.public_point(key))["valid"]  # unsigned


def test_sign_replaces_the_trailer_and_keeps_the_hash(key):
    content = sim_image()
    other = ec.generate_private_key(ec.SECP256R1())
    once = sign.sign_image(content, other)
    again = sign.sign_image(once, key)
    assert again.startswith(content) and image.split(again)[0] == content
    assert sign.verify_image(again, sign.public_point(key))["valid"]
    assert firmware.describe(again)["hash"] == hashlib.sha256(content).hexdigest()


def test_tampered_image_fails_on_the_host_check_too(key):
    content = bytearray(sim_image())
    data = bytes(content) + image.trailer(sign.sign_content(bytes(content), key))
    content[-5] ^= 1
    bad = bytes(content) + data[len(content) :]
    with pytest.raises(image.ImageError) as e:
        sign.verify_image(bad, sign.public_point(key))
    assert e.value.code == "E100"


# -- the sender against a simulated hub --------------------------------------------------------------
class HubClient:
    """An AgentClient stand-in that calls a hub directly, and can drop the link."""

    timeout = 5.0

    def __init__(self, dev, drop_at=(), lose_answer_at=()):
        self.dev = dev
        self.drop_at = set(drop_at)  # the request is lost
        self.lose_answer_at = set(lose_answer_at)  # the request is done, its answer lost
        self.calls = 0
        self.ops = []

    def request(self, op, args=None, timeout=None):
        self.calls += 1
        self.ops.append(op)
        if self.calls in self.drop_at:
            raise AgentTimeout("link lost")
        rc, data, err = self.dev.hub.handle({"t": "q", "id": 1, "op": op, "a": args or {}})
        if self.calls in self.lose_answer_at:
            raise AgentTimeout("link lost")
        return Response(1, rc, data, err)


def device_trusting(key, first=None):
    dev = fwkit.Device(first=first, key=False)
    f = dev.flash.open("/" + boot.KEY, "wb")
    f.write(sign.public_point(key))
    f.close()
    return dev


def test_send_resumes_after_link_loss_and_the_device_accepts_a_cryptography_signature(key):
    dev = device_trusting(key)
    content = sim_image(size=3000)
    data = content + image.trailer(sign.sign_content(content, key))
    c = HubClient(dev, drop_at=(3,), lose_answer_at=(6,))
    seen = []
    res = stage.send(c, data, chunk=1000, progress=lambda n, final=False: seen.append(n))
    assert res["slot"] == "b" and res["version"] == "5.0"
    assert c.ops.count("fw.begin") == 3  # the first, and one after each loss
    # nothing sent twice: after the lost answer the agent said where to go on
    assert res["sent"] == len(content) - 1000
    assert c.ops.count("fw.chunk") == -(-len(content) // 1000) + 1  # + the lost request
    assert seen[-1] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(fwkit.files("5.0", 4, 3000))
    again = stage.send(HubClient(dev), data)
    assert again["already"] and again["slot"] == "b"


def test_send_refuses_unsigned_and_reports_refusals(key):
    dev = device_trusting(key)
    content = sim_image()
    with pytest.raises(FirmwareInputError, match="not signed"):
        stage.send(HubClient(dev), content)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(stage.FirmwareError) as e:
        stage.send(HubClient(dev), content + image.trailer(sign.sign_content(content, other)))
    assert e.value.rc == "E100" and "signature" in e.value.err
    wrong = image.build("5.0", "unix", fwkit.files("x", 2, 100))
    with pytest.raises(stage.FirmwareError) as e:
        stage.send(HubClient(dev), wrong + image.trailer(sign.sign_content(wrong, key)))
    assert e.value.rc == "E11"


def test_send_gives_up_after_retries(key):
    dev = device_trusting(key)
    content = sim_image()
    data = content + image.trailer(sign.sign_content(content, key))
    with pytest.raises(LinkError, match="retries"):
        stage.send(HubClient(dev, drop_at=range(1, 100)), data, retries=2)


def test_progress_bar():
    out = io.StringIO()
    bar = Progress(1000, out=out)
    bar(0)
    bar(1000, final=True)
    text = out.getvalue()
    assert "100.0%" in text and text.endswith("\n") and "1000/1000 B" in text


def test_parse_hash(tmp_path, key):
    h = "ab" * 32
    assert firmware.parse_hash(h) == bytes.fromhex(h)
    content = sim_image()
    p = tmp_path / "x.img"
    p.write_bytes(content)
    assert firmware.parse_hash(str(p)) == hashlib.sha256(content).digest()
    with pytest.raises(FirmwareInputError):
        firmware.parse_hash("1234")


# -- commands --------------------------------------------------------------------------------------
def test_build_sign_info_commands(tmp_path, key, capsys):
    k = write_key(tmp_path / "key.pem", key)
    other = write_key(tmp_path / "other.der", ec.generate_private_key(ec.SECP256R1()), der=True)
    pub = tmp_path / "pub.bin"
    pub.write_bytes(sign.public_point(key))
    img = tmp_path / "fw.img"
    assert main(["firmware", "build", "--board", "sim", "--version", "7.0b", "--out", str(img), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["version"], info["board"], info["signed"]) == ("7.0b", "sim", False)
    content = img.read_bytes()
    assert info["hash"] == hashlib.sha256(content).hexdigest()
    names = [p for p, _n, _d in _records(content)]
    assert "agent/fw_staging.mpy" in names and "boards/sim.mpy" in names and "boards/unix.mpy" not in names
    assert main(["firmware", "sign", str(img), "--key", str(other)]) == 0
    out = capsys.readouterr().out
    assert info["hash"] in out  # the hash does not change with the signature
    assert main(["firmware", "info", str(img), "--pub", str(pub)]) == 1
    assert "INVALID" in capsys.readouterr().out
    assert main(["firmware", "sign", str(img), "--key", str(k), "--json"]) == 0
    capsys.readouterr()
    assert main(["firmware", "info", str(img), "--pub", str(pub), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signature_valid"] is True
    assert main(["firmware", "build", "--board", "sim", "--version", "toolong-version"]) == 1
    assert "1 to 8" in capsys.readouterr().err


def test_build_for_the_virtual_boards_radio(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["firmware", "build", "--version", "1.0", "--json"]) == 0  # board unix, radio sim
    info = json.loads(capsys.readouterr().out)
    assert (info["board"], info["radio"], info["file"]) == ("unix", "sim", "dbch-unix-1.0.img")
    names = {p for p, _n, _d in _records((tmp_path / info["file"]).read_bytes())}
    assert "boards/unix.mpy" in names and not {n for n in names if "sx126x" in n or "chips" in n or "simchips" in n}
    assert main(["firmware", "build", "--radio", "heltec_wifi_lora32_v3", "--version", "1.0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dbch-unix-sx1262-1.0.img: unix radio sx1262 1.0, ")
    names = {p for p, _n, _d in _records((tmp_path / "dbch-unix-sx1262-1.0.img").read_bytes())}
    assert {"hal/sx126x.mpy", "boards/simchips.mpy", "boards/heltec_wifi_lora32_v3.mpy"} <= names
    # the chip simulated at its bus is the virtual board's hardware (boards/unix.py _HARDWARE)
    assert not {n for n in names if n.startswith("hal/sim/")}
    assert not {n for n in names if "rfm69" in n or "stm32wl" in n}
    assert main(["firmware", "build", "--radio", "esp32"]) == 1
    assert "board 'unix' has no radio 'esp32': radios sim, sx1262, rfm69, stm32wl" in capsys.readouterr().err
    assert main(["firmware", "build", "--board", "pico_rfm69", "--radio", "sx1262"]) == 1
    assert "board 'pico_rfm69' has one radio" in capsys.readouterr().err


def _records(content):
    class Sink:
        def __init__(self):
            self.out = []

        def begin(self, p, n):
            self.out.append((p, n, None))

        def data(self, mv):
            pass

        def end(self):
            pass

    s = Sink()
    p = image.Parser(sink=s)
    p.feed(content)
    p.finish()
    return s.out


def test_flash_signing_key_formats(tmp_path, key):
    point = sign.public_point(key)
    pub = key.public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    (tmp_path / "p.pem").write_bytes(pub.public_bytes(serialization.Encoding.PEM, spki))
    (tmp_path / "p.der").write_bytes(pub.public_bytes(serialization.Encoding.DER, spki))
    (tmp_path / "p.bin").write_bytes(point)
    for name in ("p.pem", "p.der", "p.bin"):
        assert sign.load_signing_public(str(tmp_path / name)) == point
    assert sign.load_signing_public(point.hex()) == point
    (tmp_path / "bad.bin").write_bytes(b"\x04" + b"\x01" * 64)
    for bad in (str(tmp_path / "bad.bin"), "zz", "04" + "00" * 64):
        with pytest.raises(FirmwareInputError):
            sign.load_signing_public(bad)
    rsa_like = tmp_path / "junk.der"
    rsa_like.write_bytes(b"\x30\x03\x02\x01\x01")
    with pytest.raises(FirmwareInputError):
        sign.load_signing_public(str(rsa_like))


def test_flash_layout_pieces():
    assert flash.MAIN_PY.format(board="unix").startswith("# Written by dbch flash")
    main_py = flash.MAIN_PY.format(board="unix")
    assert "boards.load('unix')" in main_py and "dbchboot.main(start, reset=machine.reset" in main_py
    compile(main_py, "main.py", "exec")  # the bootloader's entry, with the board chosen here
    files = flash.slot_files("unix", "3.3")
    man = json.loads(files["slots/a/manifest.json"])
    assert man["version"] == "3.3" and man["board"] == "unix"
    mods = [p for p in files if p.endswith(".mpy")]
    assert "slots/a/agent/hub.mpy" in mods and "slots/a/boards/unix.mpy" in mods
    content = image.build("3.3", "unix", [(p[len("slots/a/") :], files[p]) for p in mods])
    assert man["hash"] == hashlib.sha256(content).hexdigest() and man["files"] == len(mods)
    assert json.loads(flash.boot_state_json()) == boot.default_state()


# -- CPL ---------------------------------------------------------------------------------------
EUI = "00-DB-12-34-56-78-90-A2"
GPF = "00-DB-12-34-56-78-90-A9"


@pytest.fixture
def cpl_files(tmp_path):
    c = tmp_path / "cpl.csv"
    c.write_text("model,version,status\nunix,2.0,Current\nunix,1.5,Removed\ngpfm,7,Current\n")
    s = tmp_path / "smi.json"
    s.write_text(
        json.dumps(
            {
                "devices": [
                    {"eui": EUI, "model": "unix", "version": "1.0"},
                    {"eui": GPF, "model": "gpfm", "version": "6", "device_type": "GPF"},
                ]
            }
        )
    )
    return c, s


@pytest.mark.parametrize(
    "reported,source,alert",
    [
        ("1.0", "read", None),  # no mismatch
        ("2.0", "read", "N49"),  # Current
        ("2.0", "activate", None),  # an activation to a Current version is what is expected
        ("2.0", "alert", None),
        ("1.5", "read", "N50"),  # Removed
        ("1.5", "activate", "N50"),
        ("9.9", "read", "N51"),  # not on the CPL
        ("9.9", "alert", "N51"),
    ],
)
def test_cpl_rules(cpl_files, reported, source, alert):
    c, s = cpl_files
    entries = cpl.load_cpl(c)
    dev = {d.eui: d for d in cpl.load_smi(s)}[EUI]
    f = cpl.check(dev, reported, entries, source)
    assert f.alert == alert
    assert f.smi_version == "1.0" and f.reported == reported


def test_cpl_gpf(cpl_files):
    c, s = cpl_files
    entries = cpl.load_cpl(c)
    gpf = {d.eui: d for d in cpl.load_smi(s)}[GPF]
    assert cpl.check(gpf, "7", entries, "read").alert == "N52"
    assert cpl.check(gpf, "7", entries, "activate").alert is None
    assert cpl.check(gpf, "8", entries, "activate").alert == "N51"
    assert cpl.check(gpf, "6", entries, "read").alert is None


@pytest.mark.parametrize("code", ["N49", "N50", "N51", "N52"])
def test_cpl_alert_xml_is_schema_valid(code, duis_schema_dir):
    f = cpl.Finding(EUI, "unix", "GPF" if code == "N52" else "CHF", "1.0", "2.0", "read", "Current", code, "x")
    xml = cpl.render_xml(f)
    assert validate(xml, duis_schema_dir) == []
    assert f"<sr:DCCAlertCode>{code}</sr:DCCAlertCode>".encode() in xml
    assert b"<sr:FirmwareVersionDevice>2.0</sr:FirmwareVersionDevice>" in xml


def test_cpl_bad_files(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("model,version,status\nunix,2.0,Obsolete\n")
    with pytest.raises(cpl.CplError, match="Current or Removed"):
        cpl.load_cpl(bad)
    bad.write_text("model,version,status\nunix,123456789,Current\n")
    with pytest.raises(cpl.CplError, match="1 to 8"):
        cpl.load_cpl(bad)
    j = tmp_path / "s.json"
    j.write_text('{"devices": [{"eui": "nope", "model": "m", "version": "1"}]}')
    with pytest.raises(cpl.CplError):
        cpl.load_smi(j)
    j.write_text("[1, 2]")
    with pytest.raises(cpl.CplError):
        cpl.load_smi(j)


def test_cpl_check_command(cpl_files, capsys, monkeypatch, duis_schema_dir):
    c, s = cpl_files
    args = ["firmware", "cpl-check", "--cpl", str(c), "--smi", str(s)]
    assert main(args + ["--reported", f"{EUI}=1.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["alert"] is None
    assert main(args + ["--reported", f"{EUI}=1.5", "--reported", f"{GPF}=7", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["alert"] for r in rows] == ["N50", "N52"]
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(duis_schema_dir))
    assert main(args + ["--reported", f"{EUI}=9.9", "--format", "duis"]) == 1
    out = capsys.readouterr().out
    assert "<sr:DCCAlertCode>N51</sr:DCCAlertCode>" in out
    assert main(args + ["--reported", "00-00-00-00-00-00-00-01=1.0"]) == 1
    assert "not in the SMI" in capsys.readouterr().err


# -- anti-rollback ---------------------------------------------------------------------------------
def test_build_writes_the_security_counter(tmp_path, capsys):
    img = tmp_path / "fw.img"
    assert main(["firmware", "build", "--board", "sim", "--version", "0.2.0", "--out", str(img), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sec"] == 2000 and image.parse_head(img.read_bytes())[0]["sec"] == 2000
    argv = ["firmware", "build", "--board", "sim", "--version", "0.2.0", "--security-counter", "7", "--out", str(img)]
    assert main(argv) == 0
    assert "security counter 7" in capsys.readouterr().out
    assert main(["firmware", "info", str(img), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sec"] == 7
    assert main(argv[:-4] + ["--security-counter", "-1", "--out", str(img)]) == 1
    assert "--security-counter" in capsys.readouterr().err


def test_permit_rollback_command_makes_what_the_device_accepts(tmp_path, key, capsys):
    from agent import p256

    k = write_key(tmp_path / "key.pem", key)
    dev = device_trusting(key, fwkit.Image("0.1.0"))
    old = sim_image("0.0.1")
    new = sim_image("0.2.0")
    stage.send(HubClient(dev), new + image.trailer(sign.sign_content(new, key)))
    rc, _d, err = dev.call("fw.activate", hash=hashlib.sha256(new).digest(), execution=None)
    assert rc == "I0", err
    dev.boot()
    dev.run_healthy()
    signed_old = old + image.trailer(sign.sign_content(old, key))
    with pytest.raises(stage.FirmwareError) as e:
        stage.send(HubClient(dev), signed_old)
    assert e.value.rc == "E5" and "minimum 2000" in e.value.err
    digest = hashlib.sha256(old).digest()
    out = tmp_path / "p.permit"
    eui = "00-DB-12-34-56-78-90-A2"  # the simulated hub's
    argv = ["firmware", "permit-rollback", digest.hex(), "--eui", eui, "--key", str(k), "--out", str(out), "--json"]
    assert main(argv) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["eui"] == eui and info["hash"] == digest.hex()
    signed, e64, target, sig = image.parse_permit(out.read_bytes())
    assert (e64, target) == (bytes(dev.hub.eui), digest)
    assert p256.verify(sign.public_point(key), hashlib.sha256(signed).digest(), sig)
    res = stage.send(HubClient(dev), signed_old, permit=firmware.read_permit(str(out)))
    assert res["version"] == "0.0.1" and res["slot"] == "a"
    assert dev.call("fw.activate", hash=digest, execution=None)[0] == "E5"
    rc, _d, err = dev.call("fw.activate", hash=digest, execution=None, permit=out.read_bytes())
    assert rc == "I0", err
    assert main(["firmware", "permit-rollback", digest.hex(), "--eui", "nope", "--key", str(k)]) == 1
    assert "--eui" in capsys.readouterr().err
