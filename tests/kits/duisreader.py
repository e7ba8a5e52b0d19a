"""The DCC's own DUIS reader for the host tests: the npm package @smartdcc/duis-parser (the parser
DCC Boxed clients read DUIS messages with), installed by name at a pinned version into dbch's
cache the first time (host_tools.paths.cache_dir("duis-reader", VERSION)) and run with node over
the documents dbch writes (tests/kits/duis_read.js). node and npm must be on PATH: a test that
needs the reader fails, saying what is missing, rather than skips."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from host_tools import npm
from host_tools.paths import cache_dir

PACKAGE = "@smartdcc/duis-parser"
VERSION = "0.6.0"
SCRIPT = Path(__file__).resolve().parent / "duis_read.js"
# the user's cache as it is when the tests start: tests that point XDG_CACHE_HOME elsewhere for
# their own state do not install the reader again
DEFAULT_ROOT = cache_dir("duis-reader", VERSION)


class ReaderUnavailable(Exception):
    """node or npm missing, or the package would not install."""


@dataclass(frozen=True)
class Reading:
    name: str
    ok: bool
    kind: str | None  # "request", "ResponseMessage:NoBody", "ResponseMessage:GBCSPayload", "DCCAlertMessage:N54"
    error: str | None


def install(root: Path | None = None, timeout: float = 300) -> Path:
    """The folder the package is installed under (its node_modules/), installing it with npm
    the first time."""
    if shutil.which("node") is None:
        raise ReaderUnavailable("node is not on PATH: install Node.js 16 or later to run the DCC's DUIS reader")
    root = Path(root) if root is not None else DEFAULT_ROOT
    if (root / "node_modules" / "@smartdcc" / "duis-parser" / "package.json").is_file():
        return root
    try:
        npm.install(PACKAGE, VERSION, root, timeout)
    except npm.NpmError as e:
        raise ReaderUnavailable(str(e)) from e
    return root


def read_all(documents: Iterable[tuple[str, bytes]], folder: Path, root: Path | None = None) -> list[Reading]:
    """What the reader makes of each (name, XML) document, written into `folder` and read in one
    node run."""
    root = install(root)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    names = {}
    for i, (name, xml) in enumerate(documents):
        path = folder / "{:04d}.xml".format(i)
        path.write_bytes(xml)
        files.append(str(path))
        names[str(path)] = name
    if not files:
        return []
    proc = subprocess.run(
        ["node", str(SCRIPT), str(root), *files], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise ReaderUnavailable("the DUIS reader failed: {}".format(proc.stderr.strip()[-500:]))
    out = []
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        out.append(Reading(names[row["file"]], row["ok"], row["kind"], row["error"]))
    return out
