"""What a 32-bit board holds: bench/footprint_probe.py on a 32-bit MicroPython (the WebAssembly
port run by node, bench/wasm32.py) against the 64-bit unix port, from the same .mpy files.

Needs node; the port is installed with npm into dbch's cache the first time (a few seconds when
npm has the package at hand, longer on a cold machine). Skipped, with the reason, where node,
npm or the package are missing. The 64-bit figures stay the gate (test_footprint.py).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.kits.footprintkit import bench

sys.path.insert(0, str(Path(bench.__file__).parent))
import wasm32  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")


@pytest.fixture(scope="module")
def port() -> Path:
    try:
        pkg, seconds = wasm32.install()
    except wasm32.Unavailable as e:
        pytest.skip(str(e))
    print(f"{wasm32.PACKAGE}@{wasm32.VERSION}: installed in {seconds:.1f} s" if seconds else "installed already")
    return pkg


@pytest.fixture(scope="module")
def flash(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("flash")
    bench.build_flash(d)
    return d


def test_without_node_the_port_is_unavailable_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(wasm32.shutil, "which", lambda name: None)
    with pytest.raises(wasm32.Unavailable, match="node is not on PATH"):
        wasm32.install(tmp_path)
    monkeypatch.setattr(wasm32.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    with pytest.raises(wasm32.Unavailable, match="npm is not on PATH"):
        wasm32.install(tmp_path)  # nothing installed there


def _boot(stdout: str) -> dict:
    assert "probe ok {" in stdout, stdout
    return json.loads(stdout.split("probe ok ", 1)[1].splitlines()[0])


def test_the_port_is_32_bit_and_loads_the_boards_mpy_files(port, flash):
    impl = wasm32.check(port, (flash / "agent" / "wire.mpy").read_bytes())
    assert impl["name"] == "micropython" and impl["platform"] == "webassembly"
    # a .mpy from another version is refused, with what the port loads
    other = bytearray((flash / "agent" / "wire.mpy").read_bytes())
    other[1] += 1
    with pytest.raises(wasm32.Unavailable, match="loads .mpy version"):
        wasm32.check(port, bytes(other))


def test_a_32_bit_board_holds_less_after_boot(port, flash):
    r64 = bench.run_probe(flash, "1M", "boot")
    r32 = wasm32.run(port, flash, "footprint_probe", ["boot", "probe_data"])
    assert r32.returncode == 0, r32.stderr
    f64, f32 = _boot(r64.stdout), _boot(r32.stdout)
    print(f"idle heap after boot: 64-bit {f64['boot']}, 32-bit {f32['boot']} ({f32['boot'] / f64['boot']:.2f})")
    # collected figures on both: the hub's objects after boot, and what boot added to them
    assert f32["loaded"] <= f32["boot"] <= f32["hello"]
    assert 0 < f32["boot"] < f64["boot"]
    assert 0 < f32["hello"] < f64["hello"]
