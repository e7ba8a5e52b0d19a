"""The virtual board's hardware (host_tools.firmware.hardware): its simulated world in a ROMFS image
of its own, which the board's boot (host_tools/onboard/unix_boot.py) mounts at /hw and makes
importable by its own names beside the firmware's hal, and which no flashed image carries."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from host_tools.firmware import romfs
from host_tools.firmware.build import board_hardware, board_modules
from host_tools.firmware.hardware import hardware_files, hardware_image
from tests.kits.footprintkit import bench

needs_romfs = pytest.mark.skipif(
    shutil.which("micropython") is None or not bench.romfs_supported(),
    reason="needs the MicroPython unix port with vfs.VfsRom (1.25 or later)",
)


def test_the_hardware_image_holds_the_simulated_world_and_no_firmware():
    files = hardware_files()
    assert {"hal/sim/__init__.mpy", "hal/sim/radio.mpy", "hal/sim/han.mpy", "hal/sim/chips/sx126x.mpy"} <= set(files)
    assert {p[: -len(".mpy")].replace("/", ".").removesuffix(".__init__") for p in files} == set(board_hardware("unix"))
    assert not set(board_hardware("unix")) & set(board_modules("unix"))
    path = hardware_image()
    assert path.read_bytes() == romfs.romfs_image(files) and hardware_image() == path  # built once, by its bytes


# A firmware's hal (the slot) beside the hardware's hal.sim: the boot makes hal.sim importable, it
# finds the firmware's hal.phy, and the bootloader's forgetting of what a slot loaded keeps it
_MAIN = """\
import sys
sys.path.insert(0, "fw")
from hal.sim.radio import Medium
import hal
print("hw", Medium.__name__, hal.TAG, "__file__" in dir(sys.modules["hal.sim"]))
for name in list(sys.modules):
    if name.split(".")[0] == "hal" and hasattr(sys.modules[name], "__file__"):
        del sys.modules[name]
from hal.sim.clock import FastForwardClock
print("kept", sorted(n for n in sys.modules if n.startswith("hal.sim")), FastForwardClock.__name__)
"""


@needs_romfs
def test_the_boot_mounts_the_hardware_beside_the_firmwares_hal(tmp_path):
    from host_tools.firmware.build import ROOT
    from host_tools.servers.unix_port import interpreter_argv

    fw = tmp_path / "fw" / "hal"
    shutil.copytree(ROOT / "hal", fw, ignore=shutil.ignore_patterns("sim", "__pycache__"))
    (fw / "__init__.py").write_text((ROOT / "hal" / "__init__.py").read_text() + "\nTAG = 'firmware'\n")
    (tmp_path / "main.py").write_text(_MAIN)
    r = subprocess.run(
        interpreter_argv(tmp_path, heap="128K", hardware=hardware_image()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert "hw Medium firmware False" in r.stdout, r.stdout + r.stderr
    assert "kept ['hal.sim', 'hal.sim.clock'] FastForwardClock" in r.stdout, r.stdout + r.stderr
    # without it, the firmware alone has no hal.sim
    r = subprocess.run(
        interpreter_argv(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "no module named 'hal.sim'" in r.stdout, r.stdout + r.stderr
