"""The import closure of the portable code (agent/, hal/, boards/), read from its sources without
running them: which modules a set of entry points imports, directly or not
(host_tools.firmware.build decides from it what a board's image carries and needs).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
from pathlib import Path

from host_tools.files import write_file
from host_tools.paths import cache_dir

ROOT = Path(__file__).resolve().parents[2]
PORTABLE_PACKAGES = ("agent", "hal", "boards")


def source_of(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def source_path(module: str, root: Path = ROOT) -> Path | None:
    """The source file of `module`, relative to root (None if there is none)."""
    src = source_of(module, root)
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
        src = source_of(module, root)
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
            base_src = source_of(base, root)
            if base_src is not None and base_src.name != "__init__.py":
                continue  # names from a plain module are never modules
            defined = set(_facts(base_src)["defined"]) if base_src else set()
            todo += [(base + "." + name, module) for name in imp["names"] if name not in defined]
    return needed
