"""An npm package installed by name, with its dependencies, under a folder of dbch's cache
(`npm install --prefix ROOT NAME@VERSION`): the tools the benches and tests run with node, such as
the MicroPython WebAssembly port (bench/wasm32.py) and the DCC's DUIS reader
(tests/kits/duisreader.py). The DUIS schema, templates and the signing jar, which are files taken
out of a package, are fetched by host_tools.duis.assets instead."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from host_tools.errors import DbchError


class NpmError(DbchError):
    """node or npm missing, or the package would not install; the message says which."""


def install(name: str, version: str, root: Path, timeout: float = 300) -> None:
    """NAME@VERSION installed under root (root/node_modules/NAME); NpmError if it cannot be."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(f"npm is not on PATH, and {name} is not installed in {root}")
    root.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [npm, "install", "--prefix", str(root), "--no-audit", "--no-fund", f"{name}@{version}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise NpmError(f"npm install {name}@{version} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise NpmError(f"npm install {name}@{version} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
