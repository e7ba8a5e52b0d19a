"""The project's code read for its shape (ast, every import including those inside functions): the
modules of each top-level package, who imports whom, import cycles, and where code looks at the
runtime. For the tests of the house rules (tests/host/test_house.py, test_agent_layout.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("host_tools", "boards", "agent", "hal")


def modules() -> dict[str, Path]:
    """Every module of the project's packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def _target(name: str) -> str | None:
    """The project module `name` stands for (a module, or the package/module defining it)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imported(tree: ast.Module, package: str = "") -> set[str]:
    """Every name imported anywhere in tree (`from X import Y` gives X.Y), relative ones resolved
    against package."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            out.update(f"{base}.{a.name}" if base else a.name for a in node.names)
    return out


def project_imports(module: str, path: Path) -> set[str]:
    """The project's modules `module` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets = {_target(n) for n in imported(ast.parse(path.read_text(), str(path)), package)}
    return {t for t in targets if t and t != module}


def graph(prefix: str = "") -> dict[str, set[str]]:
    """module -> the project's modules it imports, for the modules under prefix."""
    return {m: project_imports(m, p) for m, p in MODULES.items() if m.startswith(prefix)}


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of g as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


RUNTIME = ("sys", "os", "gc", "time", "machine", "micropython")


def _uses_runtime(nodes: list[ast.stmt]) -> bool:
    return any(
        isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in RUNTIME
        for stmt in nodes
        for n in ast.walk(stmt)
    )


def runtime_checks(tree: ast.Module) -> list[str]:
    """Where code looks at the runtime: sys.implementation / sys.platform, a feature tried and its
    ImportError caught (or its AttributeError, on a module of the runtime), hasattr / getattr on
    one, or an import of the MicroPython-only modules."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "sys" and node.attr in ("implementation", "platform", "print_exception"):
                found.append(f"line {node.lineno}: sys.{node.attr}")
        elif isinstance(node, ast.Try):
            for h in node.handlers:
                caught = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
                names = {c.id for c in caught if isinstance(c, ast.Name)}
                if "ImportError" in names or ("AttributeError" in names and _uses_runtime(node.body)):
                    found.append(f"line {h.lineno}: except {', '.join(sorted(names))}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Name) and first.id in RUNTIME:
                found.append(f"line {node.lineno}: {node.func.id}({first.id}, ...)")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                if n in ("machine", "micropython", "gc"):
                    found.append(f"line {node.lineno}: import {n}")
    return found
