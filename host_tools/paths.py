"""Where dbch keeps its files on this machine: the one place that computes them.

- cache: what dbch can make again (compiled modules and the imports read from their sources,
  virtual boards' and CPython agents' directories, Triage Tools,
  the DUIS schema fetched from the registry, the events already seen, IPsec
  incidents, the DCC's DUIS reader for the tests): the user cache directory's dbch/
  ($XDG_CACHE_HOME/dbch or ~/.cache/dbch on Linux).
- data: what must not be lost (the development PKI, the DCC Schedules created through the DCC
  front): the user data directory's dbch/
  ($XDG_DATA_HOME/dbch or ~/.local/share/dbch on Linux); $DBCH_PKI_DIR moves the PKI.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path, user_data_path


def cache_dir(*parts: str) -> Path:
    """<user cache>/dbch/PARTS (not created)."""
    return user_cache_path("dbch", appauthor=False).joinpath(*parts)


def data_dir(*parts: str) -> Path:
    """<user data>/dbch/PARTS (not created)."""
    return user_data_path("dbch", appauthor=False).joinpath(*parts)


def pki_dir() -> Path:
    """$DBCH_PKI_DIR, else <user data>/dbch/pki."""
    return Path(os.environ["DBCH_PKI_DIR"]) if os.environ.get("DBCH_PKI_DIR") else data_dir("pki")
