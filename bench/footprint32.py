"""What a 32-bit board holds: bench/footprint_probe.py on the 32-bit MicroPython (bench/wasm32.py,
the WebAssembly port run by node) beside the 64-bit unix port, from the same flash directory
(bench_footprint.build_flash: the same .mpy files).

measure() runs the probe's config mode (boot, hello, configuration, status) and its idle mode
(every step of the full mode, without the sampling wrappers) on both runtimes and returns the
figures of both; report() prints them side by side with their ratio (32-bit / 64-bit). Idle
figures are collected heaps on both. A 32-bit peak cannot be sampled: that port collects nothing
during a step, so the heap in use at a step's end holds every byte the step allocated (an upper
bound of what a 32-bit board needs); report() prints it, and an estimate: the 64-bit peak (the
full mode's, measured by the caller, less its sampling wrappers) times the step's idle ratio. The 64-bit cap
(bench_footprint's smallest heaps) stays the gate.
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


def measure(flash: Path, figures64: dict, run64, parse_figures) -> dict:
    """{"runtime": the 32-bit port's sys.implementation, "install_seconds", "idle": {"64": {...},
    "32": {...}} (the config mode's figures), "steps": {"64": ..., "32": ...} (the idle mode's),
    "peaks64": {step: the full mode's peak less its wrappers} (from figures64, the 64-bit full
    figures),
    "seconds"}; or {"unavailable": why} when there is no 32-bit port here. run64(flash, heap,
    mode) runs the probe on the unix port; parse_figures reads the idle mode's output (both
    bench_footprint's)."""
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
    steps = {"64": parse_figures(run64(flash, "1M", "idle").stdout)}
    r = wasm32.run(pkg, flash, "footprint_probe", ["idle", "probe_data"])
    steps["32"] = parse_figures(r.stdout)
    for bits, f in steps.items():
        if f is None or f["errors"]:
            raise RuntimeError(f"the probe's idle mode failed ({bits}-bit): {f and f['errors']}\n{r.stderr[-2000:]}")
    return {
        "runtime": impl,
        "install_seconds": round(install_seconds, 1),
        "idle": idle,
        "steps": steps,
        # less the sampling wrappers' own heap, which every figure of the full mode holds
        "peaks64": {name: s["peak"] - figures64["wrappers"] for name, s in figures64["steps"].items()},
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
    f64, f32 = res["steps"]["64"], res["steps"]["32"]
    lines.append(
        "  idle mode, after each step     64-bit    32-bit   ratio   64-bit peak  32-bit est.  32-bit allocated"
    )
    for name in order:
        a, b = f64["steps"].get(name), f32["steps"].get(name)
        if a is None or b is None:
            continue
        peak = res["peaks64"].get(name)
        est = round(peak * b["idle"] / a["idle"]) if peak else 0
        lines.append(f"{_row(name, a['idle'], b['idle'])}      {peak or 0:8d}     {est:8d}     {b['peak']:10d}")
    lines += [
        "  (idle mode: the full mode's steps without its sampling wrappers; 64-bit peak: the full mode's, less",
        "   its wrappers; 32-bit est.: that peak times the step's idle ratio, an estimate, not a measurement; 32-bit",
        "   allocated: that port collects nothing during a step, so the heap in use as the step ends holds",
        "   every byte the step allocated: an upper bound of a 32-bit board's peak)",
    ]
    installed = f"npm install {res['install_seconds']} s" if res["install_seconds"] else "installed already"
    lines.append(f"  ({wasm32.PACKAGE}@{wasm32.VERSION}: {installed}; {res['seconds']} s)")
    return lines
