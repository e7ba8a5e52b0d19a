"""host_tools.build: the portable code compiled with mpy-cross, each module named as it is
imported (its source name is then a name MicroPython holds anyway)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools.build import compile_tree, module_name


def test_module_names():
    assert module_name(Path("agent/wire.py")) == "agent.wire"
    assert module_name(Path("hal/sim/radio.py")) == "hal.sim.radio"
    assert module_name(Path("boards/__init__.py")) == "boards"
    assert module_name(Path("hal/sim/__init__.py")) == "hal.sim"


@pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")
def test_a_traceback_names_the_module_and_line(tmp_path):
    for c in compile_tree([Path("agent/__init__.py"), Path("agent/eui.py")]):
        out = tmp_path / c.target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(c.data)
    code = "import sys\nfrom agent.eui import parse_eui\ntry:\n parse_eui('zz')\nexcept ValueError as e:\n sys.print_exception(e)"
    r = subprocess.run(["micropython", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert 'File "agent.eui", line ' in r.stdout + r.stderr, r.stdout + r.stderr
