"""pytest fixtures for testing against dbch's simulated hardware and virtual boards.

Installed with dbch (the `pytest11` entry point), so any test run where dbch is installed has:

- `dbch_hub`: a hub in this process on simulated hardware (virtual clock, radio medium, flash
  with power cuts): `boards.sim.Rig`. Fast; no processes, no ptys.
- `dbch_sim_agent`: the agent under CPython on a pty (`dbch agent`), one per test module.
- `dbch_vboard`: a virtual board (the MicroPython unix port on a pty, `dbch vboard`) with the
  agent flashed through mpremote, one per test module. Needs `dbch[vboard]`.
- `dbch_triage_link`: a simulated hub that has dialed a Triage Tool (`dbch triage serve`) over
  mutually authenticated TLS, with a development PKI of its own, one per test module.

The three agent fixtures give a `Target`: `.spec` is the `--port` value, `.port` the device path,
`.client()` an AgentClient, `.request(op, args)` one answer, `.dbch(*argv)` runs the `dbch`
command against it. Choose the board with a marker on the test module or the test:
`pytest.mark.dbch_board(heap="128K", eui="00-DB-...")`, or `--dbch-heap` / `--dbch-eui`.
Every board and agent started here has a name of its own, its flash in pytest's temporary
directory, and is stopped (and its directory removed) when its scope ends.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_EUI = "00-DB-12-34-56-78-90-A2"
_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbch", "dbch virtual boards and simulated hubs")
    group.addoption("--dbch-heap", default=None, help="heap of dbch_vboard boards, e.g. 128K (default: the port's)")
    group.addoption(
        "--dbch-eui", default=None, help=f"EUI-64 of the hubs the dbch fixtures start (default {DEFAULT_EUI})"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dbch_board(heap=None, eui=None, seed=1): the board the dbch fixtures start for this module or test"
    )


def _board(request: pytest.FixtureRequest) -> dict:
    """The dbch_board marker's settings nearest the requesting node, over the command line's."""
    opts = {"heap": request.config.getoption("--dbch-heap"), "eui": request.config.getoption("--dbch-eui"), "seed": 1}
    marker = request.node.get_closest_marker("dbch_board")
    if marker is not None:
        opts.update({k: v for k, v in marker.kwargs.items() if v is not None})
    opts["eui"] = opts["eui"] or DEFAULT_EUI
    return opts


def _unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@dataclass
class Target:
    """An agent a test reaches over a port, as the `dbch` command does."""

    kind: str  # "vboard", "sim" or "triage"
    spec: str  # the --port value
    port: str  # the device path (a pty)
    eui: str
    name: str
    info: dict = field(default_factory=dict)

    def client(self, timeout: float = 5.0):
        """A new AgentClient on the port (close its transport when done: `client.transport.close()`)."""
        from host_tools.link.client import AgentClient
        from host_tools.link.ports import SerialTransport

        port = self.port
        if self.kind == "triage":  # the pty of the link the hub is on now (it may dial again)
            from host_tools.servers.triage import resolve_port

            port = resolve_port(self.spec)
        return AgentClient(SerialTransport(port), timeout=timeout, port=self.spec)

    def request(self, op: str, args: dict | None = None, timeout: float = 5.0):
        """One request's Response (.rc, .data, .ok)."""
        c = self.client(timeout)
        try:
            return c.call(op, args)
        finally:
            c.transport.close()

    def dbch(self, *argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """`dbch ARGV --port SPEC` in a new process (text output; check .returncode yourself)."""
        cmd = [sys.executable, "-m", "host_tools.cli", *argv, "--port", self.spec]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _wait_hello(target: Target, wait: float) -> dict:
    from host_tools.link.client import LinkError
    from host_tools.servers.triage import TriageToolError

    deadline = time.monotonic() + wait
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = target.request("hello", timeout=2.0)
            if r.ok:
                return r.data
        except (LinkError, TriageToolError) as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"the agent on {target.spec} did not answer within {wait:g} s ({last})")


@pytest.fixture
def dbch_hub(request: pytest.FixtureRequest):
    """A hub in this process on simulated hardware: boards.sim.Rig (.hub, .call(op, **args) ->
    (rc, data, error), .alerts(), .drain(), .boot(), .clock, .medium, .flash)."""
    from boards.sim import Rig

    opts = _board(request)
    return Rig(seed=opts["seed"], eui=opts["eui"])


@pytest.fixture(scope="module")
def dbch_sim_agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The agent under CPython on a pty, on simulated hardware: a Target with kind "sim"."""
    from host_tools.servers import simagent

    opts = _board(request)
    name = _unique("pytest")
    info = simagent.ensure_running(name, fs=tmp_path_factory.mktemp("sim-agent"), eui=opts["eui"])
    target = Target("sim", f"sim:{name}", info.port, opts["eui"], name, info.to_json())
    try:
        target.info["hello"] = _wait_hello(target, 20.0)
        yield target
    finally:
        simagent.stop(name)
        shutil.rmtree(simagent.cache_root() / name, ignore_errors=True)


@pytest.fixture(scope="module")
def dbch_vboard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A virtual board with the agent flashed (mpy-cross and mpremote, as `dbch flash` does): a
    Target with kind "vboard"; `.info["flash"]` is what the flash did, `.info["fs"]` its flash."""
    from host_tools.extras import missing

    if missing("vboard"):
        pytest.skip(missing("vboard"))
    from agent.eui import parse_eui
    from host_tools.firmware import flash
    from host_tools.servers import vboard

    opts = _board(request)
    name = _unique("pytest")
    fs = tmp_path_factory.mktemp("vboard-flash")
    try:
        info = vboard.ensure_running(name, fs=fs, heap=opts["heap"])
        res = flash.flash(info.port, "unix", eui=parse_eui(opts["eui"]))
        target = Target("vboard", f"vboard:{name}", info.port, opts["eui"], name, info.to_json())
        target.info["flash"] = res.__dict__
        target.info["hello"] = res.hello
        yield target
    finally:
        vboard.stop(name)
        shutil.rmtree(vboard.board_dir(name), ignore_errors=True)


class _Proc:
    """A dbch command in the background, its --json lines read as they come."""

    def __init__(self, argv: list[str], log: Path):
        self.log = log
        self.out = open(log, "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=self.out,
            text=True,
        )

    def first_line(self, timeout: float) -> dict:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.out.seek(0)
            raise RuntimeError(f"{self.proc.args[3:]} did not start: {self.out.read().decode(errors='replace')[-800:]}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            self.proc.stdout.close()
        self.out.close()


@pytest.fixture(scope="module")
def dbch_triage_link(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A Triage Tool (`dbch triage serve` on loopback) and a simulated hub (`dbch triage dial`)
    that has dialed it over mutually authenticated TLS: a Target with kind "triage";
    `.info["pki"]` is the development PKI both use."""
    from host_tools.security.pki import Pki
    from host_tools.servers import triage

    opts = _board(request)
    base = tmp_path_factory.mktemp("triage")
    pki = Pki(base / "pki")
    pki.init_ca()
    tool = _unique("tool").replace("-", ".")
    pki.issue_tool(tool)
    pki.issue_device(opts["eui"])
    name = _unique("pytest")
    procs: list[_Proc] = []
    try:
        serve = _Proc(
            [
                "triage",
                "serve",
                "--pki",
                str(pki.dir),
                "--tool",
                tool,
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
                "--json",
            ],
            base / "serve.log",
        )
        procs.append(serve)
        listen = serve.first_line(20.0)["listen"]
        dial = ["triage", "dial", "--pki", str(pki.dir), "--eui", opts["eui"], "--tool", tool, "--connect", listen]
        procs.append(_Proc(dial + ["--fs", str(base / "hub"), "--retry", "1"], base / "dial.log"))
        target = Target("triage", f"triage:{name}", "", opts["eui"], name, {"pki": str(pki.dir), "listen": listen})
        target.info["hello"] = _wait_hello(target, 30.0)
        target.port = triage.resolve_port(target.spec)
        yield target
    finally:
        for p in reversed(procs):
            p.stop()


def run_dbch(*argv: str, env: dict[str, Any] | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`dbch ARGV` in a new process, as a user runs it."""
    cmd = [sys.executable, "-m", "host_tools.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
