"""Power cuts on a running virtual board, at random moments (seeded, bounded): the board's
interpreter is killed (`vboard.reset`: what its reset button or a power cut does to a running
program) while a configuration is being applied, while alerts are being delivered, while an image
is being staged, and while one is being activated. After each cut the board boots and serves;
the configuration in force is one of the two it was given, whole; every change in force was
announced exactly once (8F2A, one sequence number each); staging, in plain chunks and as a
compressed stream, resumes where it stopped (a new stream at the offset the board has); an
activation ends on one of the two versions, confirmed."""

from __future__ import annotations

import random
import time
import zlib

import pytest

pytest.importorskip("mpremote")

from agent import fw_image as image  # noqa: E402
from agent import wire
from agent.eui import parse_eui  # noqa: E402
from agent.examples import DBCH04_CONFIG  # noqa: E402
from host_tools.extras import missing  # noqa: E402
from host_tools.firmware import flash, image_build, sign, stage  # noqa: E402
from host_tools.firmware import images as firmware  # noqa: E402
from host_tools.link.client import AgentClient, LinkError  # noqa: E402
from host_tools.link.ports import SerialTransport  # noqa: E402
from host_tools.security.pki import Pki  # noqa: E402
from host_tools.servers import vboard  # noqa: E402

SEED = 19
CONFIG_CUTS = 12
STAGING_CUTS = 3
EUI = "00-DB-00-00-00-00-19-08"
CONFIG_B = dict(DBCH04_CONFIG, LowerBandSubGHzChannels0To26=[3, 4], GSMECurfew=9)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    if missing("vboard"):
        pytest.skip(missing("vboard"))
    root = tmp_path_factory.mktemp("power")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(root))
    pki = Pki(root / "pki")
    pki.make_signing_key()
    key = pki.signing_key()
    name = f"power-{id(root) % 100000}"
    try:
        info = vboard.ensure_running(name, fs=root / "flash")
        res = flash.flash(info.port, "unix", eui=parse_eui(EUI), signing_key=sign.public_point(key), version="1.0.0")
        assert res.hello["version"] == "1.0.0"
        yield name, info.port, key
    finally:
        vboard.stop(name)
        mp.undo()


class Host:
    """The host's side across cuts: one transport, events kept by seq (exactly once here)."""

    def __init__(self, port: str):
        self.transport = SerialTransport(port)
        self.client = AgentClient(self.transport, timeout=3.0, port=port)
        self.events: dict[int, tuple[str, dict]] = {}

    def close(self) -> None:
        self.transport.close()

    def up(self, wait: float = 30.0) -> dict:
        """The hello of the agent once it serves again (subscribed to events)."""
        deadline = time.monotonic() + wait
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                r = self.client.request("hello", {"events": True}, timeout=1.0)
                if r.ok:
                    return r.data
            except LinkError as e:
                last = e
        raise AssertionError(f"the board did not serve again after a power cut: {last}")

    def collect(self, quiet: float = 1.0, longest: float = 20.0) -> None:
        deadline = time.monotonic() + longest
        while time.monotonic() < deadline:
            got = list(self.client.poll_events(quiet))
            for ev in got:
                self.events.setdefault(ev.seq, (ev.kind, ev.data))
                self.client.ack(ev.seq)
            if not got:
                return

    def codes(self, code: str) -> list[int]:
        return sorted(s for s, (k, d) in self.events.items() if k == "N54" and (d or {}).get("DeviceAlertCode") == code)


def _cut(name: str) -> None:
    vboard.reset(name)


def test_power_cuts_while_configuring_and_delivering_alerts(board):
    name, port, _key = board
    rng = random.Random(SEED)
    host = Host(port)
    try:
        host.up()
        forms = [_applied(host, cfg) for cfg in (DBCH04_CONFIG, CONFIG_B)]  # before counting
        host.collect()
        before = host.client.request("config.get").data
        announced = len(host.codes("8F2A"))
        changes = 0
        for i in range(CONFIG_CUTS):
            target = CONFIG_B if before and before.get("GSMECurfew") == DBCH04_CONFIG["GSMECurfew"] else DBCH04_CONFIG
            host.transport.write(wire.pack(wire.request(900 + i, "config.set", {"config": target})))
            time.sleep(rng.uniform(0.0, 0.03))
            _cut(name)
            host.up()
            if i % 2:  # half the cuts also fall while alerts are on their way to the host
                host.collect(quiet=rng.uniform(0.0, 0.05), longest=0.05)
                _cut(name)
                host.up()
            after = host.client.request("config.get").data
            assert after in (before, forms[target is CONFIG_B]), f"cut {i}: a configuration neither old nor new"
            if after != before:
                changes += 1
            before = after
        host.collect()
        seqs = host.codes("8F2A")
        print(f"{CONFIG_CUTS} cuts: {changes} changes in force, {len(seqs) - announced} announced")
        assert len(seqs) - announced == changes, "each change in force is announced exactly once"
    finally:
        host.close()


def _applied(host: Host, cfg: dict) -> dict:
    # what config.get shows for cfg once applied (the hub's own form), learnt without a cut
    assert host.client.request("config.set", {"config": cfg}).ok
    return host.client.request("config.get").data


def test_power_cuts_while_staging_and_activating(board):
    name, port, key = board
    rng = random.Random(SEED + 1)
    content = image.build("1.0.1", "unix", [(c.target, c.data) for c in image_build.build_image("unix")])
    data = content + image.trailer(sign.sign_content(content, key))
    digest = firmware.firmware_hash(content)
    host = Host(port)
    try:
        host.up()
        offsets = []
        for i in range(STAGING_CUTS):
            # every other round a compressed stream (its chunks complete image bytes as they come)
            begin = {"hash": digest, "size": len(content), "sig": image.split(data)[1]}
            if i % 2:
                begin["z"] = stage.WBITS
            r = host.client.request("fw.begin", begin)
            assert r.ok, (r.rc, r.err)
            assert bool(r.data.get("z")) == bool(i % 2), r.data  # the virtual board has deflate
            offsets.append(r.data.get("offset", 0))
            # a cut some chunks into the transfer
            off = r.data["offset"]
            if r.data.get("z"):
                pieces = stage.stream_chunks(content, off, r.data["z"], r.data["zc"], r.data["zn"])
                frames = [
                    {"offset": at, "z": z, "n": len(out), "c": zlib.crc32(out)}
                    for _, (at, z, out, _p) in zip(range(rng.randrange(2, 6)), pieces)
                ]
            else:
                step = r.data["chunk"]
                frames = [
                    {"offset": at, "data": content[at : at + step]}
                    for at in range(off, min(len(content), off + step * rng.randrange(3, 12)), step)
                ]
            for args in frames:
                host.transport.write(wire.pack(wire.request(700 + args["offset"], "fw.chunk", args)))
                time.sleep(0.02 if "z" in args else 0.005)  # a compressed chunk is four plain ones
            _cut(name)
            host.up()
        r = host.client.request("fw.begin", {"hash": digest, "size": len(content), "sig": image.split(data)[1]})
        assert r.ok and r.data.get("offset", 0) >= max(offsets), "staging resumes where it stopped"
        out = stage.send(host.client, data)
        assert out["wbits"], out  # completed as a compressed stream
        print(f"staging resumed at {offsets[1:]} after cuts; completed with {out['sent']} bytes sent")
        # activation, with a cut at a random moment of it
        host.transport.write(wire.pack(wire.request(800, "fw.activate", {"hash": digest, "execution": None})))
        time.sleep(rng.uniform(0.0, 0.3))
        _cut(name)
        hello = host.up(wait=60.0)
        deadline = time.monotonic() + 60
        while hello["version"] not in ("1.0.0", "1.0.1") and time.monotonic() < deadline:
            hello = host.up()
        assert hello["version"] in ("1.0.0", "1.0.1")
        st = host.client.request("fw.status").data
        while st.get("trial") and time.monotonic() < deadline:  # confirmed once healthy
            time.sleep(0.5)
            st = host.client.request("fw.status").data
        assert not st.get("trial"), f"the board runs a confirmed image after the cut: {st}"
        assert st["version"] == hello["version"]
        print(f"activation cut: the board runs {hello['version']}, confirmed")
    finally:
        host.close()
