"""Writing a file whole: whoever reads it (another dbch, or this one after a crash) finds the old
content or the new, never a part of it. The data goes to a temporary file beside the file, which
is then renamed over it."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def write_file(path: Path | str, data: bytes, *, secret: bool = False, sync: bool = False) -> None:
    """Write `data` to `path` whole (its directory made if missing). secret: the file is mode
    0600 (else 0644, less the umask); sync: the file and its new name are on the disk when this
    returns, so a power cut loses neither. OSError if it cannot be written; no temporary file is
    left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # one a crash left: a new file gets the mode asked for
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path | str, value: Any, *, indent: int | None = 2, sync: bool = False) -> None:
    """`value` as JSON (keys sorted, then a newline) written whole to `path` (write_file)."""
    write_file(path, (json.dumps(value, indent=indent, sort_keys=True) + "\n").encode(), sync=sync)
