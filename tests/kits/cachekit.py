"""A private dbch cache for one host test module (host only: pytest): XDG_CACHE_HOME pointed at a
fresh directory while the module runs, and every virtual board and CPython agent started under
it stopped after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, pytest.MonkeyPatch]]:
    """(the cache directory, the MonkeyPatch that set it, for the module's other settings)."""
    from host_tools.servers import simagent, vboard

    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root))
        try:
            yield root, mp
        finally:
            for info in vboard.list_boards():
                vboard.stop(info.name)
            for info in simagent.list_agents():
                simagent.stop(info.name)
