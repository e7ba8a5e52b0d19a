"""bench/bench_footprint.py, loaded once for the tests that run the agent as a board runs it
(main.py on the unix port at a fixed heap, its console on pipes)."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_footprint.py"
_spec = importlib.util.spec_from_file_location("bench_footprint", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
