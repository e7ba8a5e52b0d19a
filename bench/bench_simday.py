"""Wall time of a simulated day (hub + simulated radio, 24 h of virtual time) on CPython and on
the MicroPython unix port, measured in the same run; prints the speed-up over real time and the
MicroPython/CPython ratio."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "simday.py"


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    line = [x for x in out.splitlines() if x.startswith("simday ")][-1].split()
    return float(line[1]), int(line[2]), int(line[3])


def main():
    cpy = run([sys.executable, str(SCRIPT), str(ROOT)])
    upy = run(["micropython", str(SCRIPT), str(ROOT)])
    day = 24 * 3600.0
    for name, (wall, sent, alerts) in (("CPython", cpy), ("MicroPython", upy)):
        print(
            f"{name:12s} simulated day in {wall:7.2f} s wall ({day / wall:8.0f}x real time), {sent} frames sent, {alerts} events"
        )
    print(f"MicroPython / CPython wall time: {upy[0] / cpy[0]:.2f}")


if __name__ == "__main__":
    main()
