"""What a 32-bit board holds: bench/footprint_probe.py on the 32-bit MicroPython (bench/wasm32.py,
the WebAssembly port run by node) beside the 64-bit unix port, from the same flash directory
(bench_footprint.build_flash: the same .mpy files).

measure(flash, figures64) runs the probe's boot and config modes on both runtimes and its full
mode on the 32-bit one (figures64: the 64-bit full figures, measured by the caller), and returns
the figures of both; report() prints them side by side with their ratio (32-bit / 64-bit).
Idle figures are collected heaps on both. A 32-bit peak is not comparable: that port collects
nothing during a step, so its peak holds every byte the step allocated (an upper bound of what
a 32-bit board would need); the 64-bit cap (bench_footprint's smallest heaps) stays the gate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import wasm32

IDLE = ("loaded", "boot", "hello", "config", "status")  # the config mode's idle figures


def _probe_ok(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith("probe ok {"):
            return json.loads(line[len("probe ok ") :])
    return None


def measure(flash: Path, figures64: dict, run64, parse_figures, full: bool = True) -> dict:
    """{"runtime": the 32-bit port's sys.implementation, "install_seconds", "idle": {"64": {...},
    "32": {...}} (the config mode), "full32": the full mode's figures on the 32-bit port (None if
    not full), "full64": figures64, "seconds"}; or {"unavailable": why} when there is no 32-bit
    port here. run64(flash, heap, mode) runs the probe on the unix port; parse_figures reads the
    full mode's output (both bench_footprint's)."""
    t0 = time.monotonic()
    try:
        pkg, install_seconds = wasm32.install()
        impl = wasm32.check(pkg, (flash / "footprint_probe.mpy").read_bytes())
    except wasm32.Unavailable as e:
        return {"unavailable": str(e)}
    idle = {}
    r = run64(flash, "1M", "config")
    idle["64"] = _probe_ok(r.stdout)
    r = wasm32.run(pkg, flash, "footprint_probe", ["config", "probe_data"])
    idle["32"] = _probe_ok(r.stdout)
    if idle["32"] is None:
        raise RuntimeError(f"the probe failed on the 32-bit port:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    full32 = None
    if full:
        r = wasm32.run(pkg, flash, "footprint_probe", ["full", "probe_data"], timeout=1800)
        full32 = parse_figures(r.stdout)
        if r.returncode != 0 or full32 is None:
            raise RuntimeError(f"the full probe failed on the 32-bit port:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return {
        "runtime": impl,
        "install_seconds": round(install_seconds, 1),
        "idle": idle,
        "full64": figures64,
        "full32": full32,
        "seconds": round(time.monotonic() - t0, 1),
    }


def _row(name: str, a: int | None, b: int | None) -> str:
    ratio = f"{b / a:6.2f}" if a and b is not None else "     -"
    return f"  {name:28s} {a if a is not None else '-':>8}  {b if b is not None else '-':>8}  {ratio}"


def report(res: dict, order: list[str]) -> list[str]:
    """The section's lines; order: the steps in the order bench_footprint prints them."""
    if "unavailable" in res:
        return ["", f"32-bit figures not measured: {res['unavailable']}; the 64-bit figures only"]
    impl = res["runtime"]
    version = ".".join(str(n) for n in impl["version"])
    lines = [
        "",
        f"what a 32-bit board holds (MicroPython {version} WebAssembly port, {impl['_machine']}, run by node;"
        f" the same .mpy files; bytes, gc.mem_alloc(); ratio = 32-bit / 64-bit)",
        "  idle, probe config mode        64-bit    32-bit   ratio",
    ]
    i64, i32 = res["idle"]["64"], res["idle"]["32"]
    for name in IDLE:
        lines.append(_row(name, i64.get(name), i32.get(name)))
    f64, f32 = res["full64"], res["full32"]
    if f32 is not None:
        lines.append("  full mode, idle after step     64-bit    32-bit   ratio     64-bit peak  32-bit allocated")
        for name in order:
            a, b = f64["steps"].get(name), f32["steps"].get(name)
            if a is None or b is None:
                continue
            lines.append(f"{_row(name, a['idle'], b['idle'])}     {a['peak']:8d}     {b['peak']:8d}")
        lines.append(
            "  (32-bit allocated: that port collects nothing during a step, so its 'peak' holds every byte"
            " the step allocated: an upper bound, not a 32-bit peak)"
        )
    lines.append(f"  (npm install {res['install_seconds']} s; {res['seconds']} s)")
    return lines
