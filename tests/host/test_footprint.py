"""The agent on a small board's heap: the MicroPython unix port run as the virtual board runs it,
with `-X heapsize=`, from .mpy files (host_tools.firmware.build) laid out as the board's flash.

- The whole agent (boards/unix.py: simulated radio, file storage, the console as its link) boots
  from main.py and serves the wire protocol to host_tools.link.client.AgentClient over a pipe: hello,
  the DBCH04-like configuration, status, an alert burst, a signed image of the agent staged with
  host_tools.firmware.stage.send (what dbch firmware send does) and reported staged and verified by
  fw.status, the alerts delivered and acknowledged (bench_footprint.run_session, which the bench
  also bisects for the smallest heap).
- bench/footprint_probe.py (in-process figures) for the idle heap, and bisected smallest heaps.

The 128 KB budget is the requirement. Where the agent does not meet it yet the test is marked
xfail(strict=True) with the figure measured when it was written: it turns into a failure (drop
the mark) the day the agent fits. bench/bench_footprint.py prints every figure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host_tools.link.client import AgentClient
from tests.kits.footprintkit import bench

ROOT = Path(__file__).resolve().parents[2]
CAP = 128 * 1024

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")


@pytest.fixture(scope="module")
def flash(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("flash")
    bench.build_flash(d)  # with main.py, the trusted key and the signed image
    return d


# -- the agent as a board runs it --------------------------------------------------------------
# bench_footprint.PipeTransport: the unix port running main.py from a copy of the flash, its
# console on pipes; bench_footprint.run_session: the whole session over it.


@pytest.mark.parametrize(
    "heap",
    [
        pytest.param(
            "128K",
            marks=pytest.mark.xfail(
                strict=True,
                reason="does not fit yet: with the image staged the session needs about 146-160 KB on the "
                "64-bit unix port. fw.begin fails: its first import interns the 621st name, and the "
                "interpreter's next name pool (640 entries, one 7 KB block; MicroPython reports it as "
                "'allocating 640 bytes') finds no free run that long. With that pool made at boot, "
                "fw.begin's signature check still fails near 140 KB: the free heap is then mostly one- "
                "and two-block holes left by loading modules. Without the staging it fits (next test); "
                "the staging's answer at 128 KB is tested below",
            ),
        ),
        "512K",
    ],
)
def test_the_agent_serves_its_console_on_a_small_heap(flash, tmp_path, heap):
    facts = bench.run_session(flash, heap, tmp_path / "board")
    assert facts["hello"]["board"] == "unix"
    assert facts["hello"]["version"] != bench.IMAGE_VERSION  # so the image is really staged
    assert facts["channel"]["page"] in (28, 29, 30)
    # the image staged over the pipe, every chunk sent, hash and signature checked by fw.end
    img, sent, st = facts["fw_image"], facts["fw_sent"], facts["fw_status"]
    assert img["version"] == bench.IMAGE_VERSION and img["board"] == "unix" and img["signed"]
    assert not sent.get("already") and sent["sent"] == img["size"]
    assert sent["hash"] == bytes.fromhex(img["hash"]) and sent["version"] == bench.IMAGE_VERSION
    # fw.status: staged and verified in the inactive slot, nothing half-received, still running
    # the flashed version, the trusted key in place
    assert sent["slot"] == "b" and st["slot"] == "a"
    assert st["slots"]["b"] == {"version": bench.IMAGE_VERSION, "hash": img["hash"]}
    assert st["staging"] is None and st["key"] is True
    assert st["version"] == facts["hello"]["version"] and st["activation"] is None
    seen = facts["alerts"]
    for code in bench.BURST_ALERTS:
        assert code in seen, (code, seen)
    assert facts["outbox"] == 0
    assert facts["exit"] == 0, facts["stderr"]  # main.py returns when the console closes
    assert "Error" not in facts["stderr"], facts["stderr"]
    assert bench.session_problems(facts) == []


def test_the_agent_serves_its_console_without_staging_in_128k(flash):
    # The same session without the firmware staging, on the 128 KB heap: boot, hello, the
    # configuration, the alert burst and its delivery. Its smallest heap was 118-124 KB when this
    # was written; it moves by 4-8 KB from run to run (a random EUI and epoch at first boot, the
    # heap's fragmentation).
    why: list[str] = []
    assert bench.session_ok(flash, CAP, False, why), why


def test_staging_in_128k_is_done_or_refused_and_the_session_goes_on(flash, tmp_path):
    # Whatever the staging does on the 128 KB heap (refused for want of memory when this was
    # written, see the xfail above), it is answered with a response code, and the agent goes on
    # serving: the alerts of the burst all delivered, nothing left in the outbox, a clean exit.
    facts = bench.run_session(flash, "128K", tmp_path / "board", staging_may_fail=True)
    if "fw_error" in facts:
        rc, err = facts["fw_error"]
        assert rc == "E49" and "out of memory" in err, facts["fw_error"]
    else:
        assert facts["fw_status"]["slots"]["b"]["version"] == bench.IMAGE_VERSION
    for code in bench.BURST_ALERTS:
        assert code in facts["alerts"], (code, facts["alerts"])
    assert facts["outbox"] == 0
    assert facts["exit"] == 0 and "Error" not in facts["stderr"], facts["stderr"]


def test_a_session_that_runs_out_of_heap_is_reported_not_passed(flash, tmp_path):
    # the bisection's test can fail: on a heap too small to boot the board exits, and the host
    # is told at once (not after its timeout)
    why: list[str] = []
    assert not bench.session_ok(flash, 64 * 1024, True, why)
    assert len(why) == 1 and "MemoryError" in why[0], why
    assert bench.session_problems({"exit": 0, "stderr": ""}) != []


def test_an_image_signed_by_another_key_is_refused_in_the_session(flash, tmp_path):
    # the trusted key matters: with another key on the board, fw.begin is refused (E100)
    from cryptography.hazmat.primitives.asymmetric import ec

    from host_tools.firmware import sign, stage

    other = tmp_path / "other"
    shutil.copytree(flash, other)
    (other / "fwkey.bin").write_bytes(sign.public_point(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(stage.FirmwareError) as e:
        bench.run_session(other, "1M", tmp_path / "board")
    assert e.value.rc == "E100"


def test_the_agent_returns_when_its_console_closes(flash, tmp_path):
    t = bench.PipeTransport(flash, "1M", tmp_path / "board")
    c = AgentClient(t, timeout=10.0)
    assert c.hello().rc == "I0"
    status, err = t.close(wait=5.0)
    assert status == 0, err


# -- figures from the probe ----------------------------------------------------------------------


def test_the_probe_sets_the_agents_heap_policy():
    # the probe measures the hub without agent.run, so it sets the agent's GC_EVERY itself
    import ast

    from agent.run import GC_EVERY

    tree = ast.parse((ROOT / "bench" / "footprint_probe.py").read_text(encoding="utf-8"))
    set_there = [
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["GC_EVERY"]
    ]
    assert set_there == [GC_EVERY]


def test_compiled_modules_are_a_fraction_of_the_heap():
    sizes = {}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        sizes = bench.build_flash(Path(d))
    # the simulated world (hal/sim: the clock, the medium, the HAN's devices, the radio chips at
    # their bus) is the virtual board's hardware, never flashed (boards/unix.py _HARDWARE), and
    # boards.simchips loads only where a simulated board is asked for a driver
    sizes = {k: n for k, n in sizes.items() if not k.startswith("hal/sim/") and k != "boards/simchips.mpy"}
    total = sum(sizes.values())
    print(f".mpy: {len(sizes)} modules, {total} bytes ({total / CAP:.0%} of 128 KB)")
    assert len(sizes) > 30
    assert all(n > 0 for n in sizes.values())
    assert total < CAP


def test_idle_heap_after_boot_and_configuration(flash):
    r = bench.run_probe(flash, "1M", "config")
    assert r.returncode == 0, r.stderr
    import json

    f = json.loads(r.stdout.split("probe ok ", 1)[1])
    print("idle heap (bytes):", f)
    assert f["base"] < f["imported"] < f["boot"] <= f["hello"] <= f["config"] <= f["status"]
    # applying the configuration keeps little: a few records' worth
    assert f["config"] - f["boot"] < 8 * 1024
    # what the hub holds at idle besides its code is small next to the code
    assert f["status"] - f["imported"] < 48 * 1024


def test_the_probe_stages_the_signed_image(flash, tmp_path):
    # the probe's firmware mode: boot, configuration, the image staged and verified, a scheduled
    # activation cancelled; with the trusted key replaced, staging is refused and the probe fails
    assert bench.probe_ok(flash, 1024 * 1024, "firmware")
    f = bench.full_figures(flash, "1M", "fwfull")
    assert f["fw"]["chunks"] == -(-f["fw"]["image"] // f["fw"]["chunk"]) and f["fw"]["slot"] == "b"
    assert f["steps"]["firmware"]["peak"] > f["steps"]["firmware"]["idle"] > f["steps"]["status"]["idle"]
    assert "firmware" not in f["errors"] and "fw_activate" not in f["errors"]
    from cryptography.hazmat.primitives.asymmetric import ec

    from host_tools.firmware import sign

    other = tmp_path / "other"
    shutil.copytree(flash, other)
    (other / "fwkey.bin").write_bytes(sign.public_point(ec.generate_private_key(ec.SECP256R1())))
    r = bench.run_probe(other, "1M", "firmware")
    assert "probe failed" in r.stdout and "E100" in r.stdout, r.stdout


def test_a_session_with_staging_fits_in_184k(flash):
    # Until the agent stages in 128 KB, a guard on the real session with the image staged
    # (146-160 KB when this was written; the heap's fragmentation differs with the random EUI and
    # epoch, so the guard leaves room; bench_footprint prints the figures). Lower it as the agent
    # shrinks.
    why: list[str] = []
    assert bench.session_ok(flash, 184 * 1024, True, why), why


def test_boot_fails_cleanly_on_a_tiny_heap_and_runs_on_a_large_one(flash):
    # the measurement can fail: MemoryError on a tiny heap, "probe ok" on a large one
    small = bench.run_probe(flash, "32K", "boot")
    assert small.returncode != 0 and "MemoryError" in small.stderr + small.stdout
    assert bench.probe_ok(flash, 1024 * 1024, "boot")


def test_smallest_heap_guard(flash):
    # Until the agent fits 128 KB: no more than this (146 KB when this was written, on the 64-bit
    # unix port: the probe holds every module and its own host side). Lower it as the agent
    # shrinks.
    n = bench.smallest_heap(flash, "config", 320 * 1024, lo=64 * 1024)
    print(f"smallest heap that boots and takes the configuration: {n} bytes ({n / CAP:.0%} of 128 KB)")
    assert n is not None and n <= 168 * 1024


@pytest.mark.xfail(
    strict=True,
    reason="the probe (the host's side and its figures in the same heap) needs about 143-146 KB for boot + "
    "configuration on the 64-bit unix port; the agent alone: see the session tests",
)
def test_boots_and_takes_the_configuration_in_128k(flash):
    assert bench.probe_ok(flash, CAP, "config")


def test_hostile_requests_fit_with_96k_of_headroom(flash):
    # Maximum-size requests built to cost the decoder the most heap ([[0]] * 2000 in 4 KB would
    # be about 160 KB of objects) are each answered, with no MemoryError, on the heap the
    # configured hub needs plus 96 KB (the probe's own frames and the heap's fragmentation take
    # some of that).
    n = bench.smallest_heap(flash, "config", 320 * 1024, lo=64 * 1024)
    assert n is not None
    assert bench.probe_ok(flash, n + 96 * 1024, "hostile")
