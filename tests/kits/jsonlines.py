"""A program in its own process whose standard output is JSON lines (`dbch gateway --json`, the
fleet of simulated hubs), collected by a thread as they come, for the fleet's tests and bench."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class JsonLines:
    """argv run with this checkout on PYTHONPATH; its stderr to `log` (else kept in a pipe)."""

    def __init__(self, argv: list[str], log: Path | None = None):
        self.log = open(log, "ab") if log else None  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        stderr = self.log or subprocess.PIPE
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
        self.lines: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def _why(self) -> str:
        if self.log:
            return f"see {self.log.name}"
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def wait_for(self, pred, timeout: float, what: str) -> dict:
        """The first line pred() takes; AssertionError if none within timeout or the program ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [x for x in self.lines if pred(x)]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"{what}: the program exited {self.proc.returncode}: {self._why()}"
            time.sleep(0.05)
        raise AssertionError(f"not within {timeout:g} s: {what} ({self._why()})")

    def count(self, pred) -> int:
        return sum(1 for x in self.lines if pred(x))

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        if self.log:
            self.log.close()
