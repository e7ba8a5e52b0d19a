"""A 32-bit MicroPython for the benches: the MicroPython WebAssembly port run by node.

The virtual board (the unix port) is 64-bit: its objects take about twice the bytes they take on
a 32-bit microcontroller. The WebAssembly port is a 32-bit MicroPython (wasm32), shipped as the
npm package PACKAGE; node runs it with bench/wasm32_run.mjs, which gives it a directory as its
filesystem (copied into the port's in-memory one as /flash, the current directory) and runs a
module from it as `micropython -m MODULE ARG...` would.

- It loads the .mpy files mpy-cross makes for the boards as they are: they are bytecode (no
  -march), and the port takes .mpy version MPY_VERSION (check(): compare the interpreter's
  sys.implementation._mpy with the compiler's files).
- Its heap grows on demand (the first HEAP bytes, then more from the host): it measures but
  does not cap, so a smallest heap cannot be searched on it.
- It collects garbage only when the host calls into it, never during a call: gc.collect() and
  gc.threshold() there only ask for a collection. A module that wants collected figures leaves a
  generator in its RUN that yields where it wants the heap collected, and the runner resumes it
  in a call of its own each time (bench/footprint_probe.py does). So figures taken at a yield are
  collected, and any taken between two (a peak) hold every byte allocated since the last yield.

install() puts the package in dbch's cache (host_tools.paths.cache_dir("wasm32")) with npm
the first time; node and npm must be on PATH (Unavailable says what is missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from host_tools import npm
from host_tools.paths import cache_dir

PACKAGE = "@micropython/micropython-webassembly-pyscript"
VERSION = "1.27.0"  # the release measured; its .mpy version is MPY_VERSION
MPY_VERSION = 6
HEAP = 128 * 1024  # the first heap; the port adds more as it needs it
DRIVER = Path(__file__).resolve().parent / "wasm32_run.mjs"


class Unavailable(Exception):
    """No 32-bit MicroPython here: node or npm missing, or the package would not install."""


def package_dir(root: Path) -> Path:
    return root / "node_modules" / Path(*PACKAGE.split("/"))


def install(root: Path | None = None, timeout: float = 300) -> tuple[Path, float]:
    """The package's directory (micropython.mjs, micropython.wasm) under root (default: dbch's
    cache), installed with npm if not there yet; and the seconds the install took (0 if none)."""
    if shutil.which("node") is None:
        raise Unavailable("node is not on PATH (install Node.js 18 or later for the 32-bit figures)")
    root = Path(root) if root is not None else cache_dir("wasm32", VERSION)
    pkg = package_dir(root)
    if (pkg / "micropython.mjs").is_file() and (pkg / "micropython.wasm").is_file():
        return pkg, 0.0
    t0 = time.monotonic()
    try:
        npm.install(PACKAGE, VERSION, root, timeout)
    except npm.NpmError as e:
        raise Unavailable(str(e)) from e
    if not (pkg / "micropython.mjs").is_file():
        raise Unavailable(f"npm installed {PACKAGE}@{VERSION} without micropython.mjs in {pkg}")
    return pkg, time.monotonic() - t0


def run(
    pkg: Path, flash: Path, module: str, args: list[str], heap: int = HEAP, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`module` with sys.argv [module, *args] on the 32-bit port, from a copy of flash (what it
    writes there is not kept)."""
    return subprocess.run(
        ["node", str(DRIVER), str(pkg), str(flash), str(heap), module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def implementation(pkg: Path) -> dict:
    """The port's sys.implementation: name, version, _mpy (the .mpy version it loads, low byte,
    and its native architecture, bits 10 and up: 0, bytecode only), _machine."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dbch-wasm32-") as tmp:
        (Path(tmp) / "dbch_impl.py").write_text(
            "import json, sys\n"
            "i = sys.implementation\n"
            "print(json.dumps({'name': i.name, 'version': list(i.version[:3]), '_mpy': i._mpy,"
            " '_machine': i._machine, 'platform': sys.platform}))\n"
        )
        r = run(pkg, Path(tmp), "dbch_impl", [])
    if r.returncode != 0:
        raise Unavailable(f"the 32-bit port did not start: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def check(pkg: Path, mpy: bytes) -> dict:
    """The port's implementation, if it loads .mpy files made as `mpy` (one of them) is: the same
    .mpy version, bytecode only or its own architecture, small ints it can hold; else Unavailable."""
    impl = implementation(pkg)
    version, arch = impl["_mpy"] & 0xFF, impl["_mpy"] >> 10
    if mpy[:1] != b"M" or mpy[1] != version:
        raise Unavailable(f"the 32-bit port loads .mpy version {version}, mpy-cross makes version {mpy[1]}")
    if mpy[2] >> 2 not in (0, arch):
        raise Unavailable(f"the .mpy files are for native architecture {mpy[2] >> 2}, the port's is {arch}")
    if mpy[3] > 31:
        raise Unavailable(f"the .mpy files assume {mpy[3]}-bit small ints; the 32-bit port has 31")
    return impl
