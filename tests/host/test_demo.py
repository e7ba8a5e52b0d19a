"""The README's main job: `dbch demo` on a virtual board, twice (it must be repeatable)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(os.environ.get("DBCH_DUIS_SCHEMA_DIR", ROOT.parent / "shared" / "duis"))


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_DATA_HOME=str(tmp_path / "data"))
    yield e
    subprocess.run([sys.executable, "-m", "host_tools.cli", "vboard", "--stop", "--name", "demo"], env=e, cwd=ROOT)


def run_demo(env):
    p = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "demo", "--port", "vboard:demo", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_demo_runs_end_to_end_and_again(env):
    from host_tools import duis

    for run in range(2):
        out = run_demo(env)
        codes = [a["code"] for a in out["alerts"] if a["kind"] == "N54"]
        assert {"8F2A", "8F20", "8F22", "8F24"} <= set(codes), codes
        if run:
            assert codes[:3] == ["8F25", "8F23", "8F21"]  # the previous run's hour aged out
        n64 = [a for a in out["alerts"] if a["kind"] == "N64"]
        assert len(n64) == 1
        assert out["status"]["version"] == "0.1.0d"
        assert out["status"]["duty"]["state"] == "regulated"
        if SCHEMA.is_dir():
            for a in out["alerts"]:
                assert duis.validate(a["xml"].encode(), SCHEMA) == []
