"""The agent on a small board's heap: the MicroPython unix port run as the virtual board runs it,
with `-X heapsize=`, from .mpy files (host_tools.build) laid out as the board's flash.

- The whole agent (boards/unix.py: simulated radio, file storage, the console as its link) boots
  from main.py and serves the wire protocol to host_tools.client.AgentClient over a pipe: hello,
  the DBCH04-like configuration, status, an alert burst delivered and acknowledged.
- bench/footprint_probe.py (in-process figures) for the idle heap, and bisected smallest heaps.

The 128 KB budget is the requirement. Where the agent does not meet it yet the test is marked
xfail(strict=True) with the figure measured when it was written: it turns into a failure (drop
the mark) the day the agent fits. bench/bench_footprint.py prints every figure.
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from host_tools.client import AgentClient, LinkError

ROOT = Path(__file__).resolve().parents[2]
CAP = 128 * 1024

pytestmark = pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")

MAIN_PY = """# a board's main.py: start the hub agent on the virtual board's parts
from boards import load

board = load("unix")
from agent.run import serve

serve(board.make_hal(), board)
"""


def _bench():
    spec = importlib.util.spec_from_file_location("bench_footprint", ROOT / "bench" / "bench_footprint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _bench()


@pytest.fixture(scope="module")
def flash(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("flash")
    bench.build_flash(d)
    (d / "main.py").write_text(MAIN_PY)
    return d


# -- the agent as a board runs it --------------------------------------------------------------


class PipeTransport:
    """The unix port running main.py, its console on pipes (stdin: to the agent)."""

    def __init__(self, flash: Path, heap: str, workdir: Path):
        shutil.copytree(flash, workdir)
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        self.proc = subprocess.Popen(
            [shutil.which("micropython"), "-X", f"heapsize={heap}", "main.py"],
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.text = bytearray()

    def read(self, n: int) -> bytes:
        if self.proc.poll() is not None and not select.select([self.proc.stdout], [], [], 0)[0]:
            raise LinkError(f"the board exited ({self.proc.returncode}): {self.stderr()}")
        if not select.select([self.proc.stdout], [], [], 0.02)[0]:
            return b""
        return os.read(self.proc.stdout.fileno(), n)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self, wait: float = 5.0) -> tuple[int | None, str]:
        """End of input: the agent's loop should end and main.py return. The exit status, or
        None if the board was still running after `wait` seconds (then it is killed)."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        status = None
        try:
            status = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return status, err.decode(errors="replace")


def _template() -> dict:
    spec = importlib.util.spec_from_file_location("hubkit_copy", ROOT / "tests" / "portable" / "hubkit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return dict(mod.TEMPLATE)


def run_session(flash: Path, heap: str, workdir: Path) -> dict:
    t = PipeTransport(flash, heap, workdir)
    facts: dict = {}
    try:
        c = AgentClient(t, timeout=10.0, on_text=t.text.extend)
        r = c.hello()
        assert r.rc == "I0", r
        facts["hello"] = r.data
        r = c.request("config.set", {"config": _template()})
        assert r.rc == "I0", r
        r = c.request("status")
        assert r.rc == "I0" and r.data["configured"], r
        facts["channel"] = r.data["channel"]
        # an alert burst: far above the duty-cycle limits (two devices, then essential traffic),
        # then the hour passes
        for args in (
            {"device": "00-00-00-00-00-00-00-01"},
            {"device": "00-00-00-00-00-00-00-02"},
            {"essential": True},
        ):
            r = c.request("send", dict(args, count=4000, len=125), timeout=60)
            assert r.rc == "I0", r
        r = c.request("clock.advance", {"ms": 3_700_000})
        assert r.rc == "I0", r
        # subscribe, then take every event and acknowledge it
        r = c.hello(events=True)
        assert r.rc == "I0", r
        codes = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for ev in c.poll_events(0.3):
                c.seen.add(ev.seq)
                codes.append(ev.data.get("DeviceAlertCode"))
                c.ack(ev.seq)
            r = c.request("status")
            if r.data["outbox"] == 0:
                break
        facts["alerts"] = codes
        facts["outbox"] = r.data["outbox"]
    finally:
        facts["exit"], facts["stderr"] = t.close(wait=10.0)
    return facts


@pytest.mark.parametrize(
    "heap",
    [
        pytest.param(
            "128K",
            marks=pytest.mark.xfail(
                strict=True,
                reason="does not fit yet: on the 64-bit unix port the agent's modules take about 107 KB "
                "of heap once imported (bytecode, qstrs, tables) and boot + hello needs about 162 KB",
            ),
        ),
        "512K",
    ],
)
def test_the_agent_serves_its_console_on_a_small_heap(flash, tmp_path, heap):
    facts = run_session(flash, heap, tmp_path / "board")
    assert facts["hello"]["board"] == "unix"
    assert facts["channel"]["page"] in (28, 29, 30)
    seen = facts["alerts"]
    for code in ("8F2A", "8F27", "8F26", "8F20", "8F22", "8F24", "8F25", "8F23", "8F21"):
        assert code in seen, (code, seen)
    assert facts["outbox"] == 0
    assert facts["exit"] == 0, facts["stderr"]  # main.py returns when the console closes
    assert "Error" not in facts["stderr"], facts["stderr"]


def test_the_agent_returns_when_its_console_closes(flash, tmp_path):
    t = PipeTransport(flash, "1M", tmp_path / "board")
    c = AgentClient(t, timeout=10.0)
    assert c.hello().rc == "I0"
    status, err = t.close(wait=5.0)
    assert status == 0, err


# -- figures from the probe ----------------------------------------------------------------------


def test_compiled_modules_are_a_fraction_of_the_heap():
    sizes = {}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        sizes = bench.build_flash(Path(d))
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


def test_boot_fails_cleanly_on_a_tiny_heap_and_runs_on_a_large_one(flash):
    # the measurement can fail: MemoryError on a tiny heap, "probe ok" on a large one
    small = bench.run_probe(flash, "32K", "boot")
    assert small.returncode != 0 and "MemoryError" in small.stderr + small.stdout
    assert bench.probe_ok(flash, 1024 * 1024, "boot")


def test_smallest_heap_guard(flash):
    # Until the agent fits 128 KB: no more than this (173 KB when this was written, on the 64-bit
    # unix port, the firmware service loaded at boot). Lower the bound as the agent shrinks.
    n = bench.smallest_heap(flash, "config", 320 * 1024, lo=64 * 1024)
    print(f"smallest heap that boots and takes the configuration: {n} bytes ({n / CAP:.0%} of 128 KB)")
    assert n is not None and n <= 200 * 1024


@pytest.mark.xfail(
    strict=True,
    reason="boot + configuration need about 168 KB on the 64-bit unix port (see the session test)",
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
