import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/upy holds MicroPython's own unittest shim: never let CPython import it.
collect_ignore = ["upy"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
