"""Flash many boards at once: `dbch flash --port A --port B ...`.

The image is compiled once for all boards of the same board module (flash.slot_files), then each
board is flashed by host_tools.firmware.flash.flash in a thread of its own
(host_tools.link.side_by_side): a flash mostly waits on its serial line, so the boards' lines are
busy side by side. Each board's progress becomes events,
dicts keyed by the port as given ("port"), with the board's EUI ("eui") once its agent's hello is
seen:

    {"event": "progress", "port": P, "phase": PHASE, "message": M, "bytes": N, "total": T, "percent": X}
    {"event": "result", "port": P, "ok": true, "eui": E, "flash": {...FlashResult...}}
    {"event": "result", "port": P, "ok": false, "error": "what went wrong"}

PHASE is "connect" (the image is ready; taking the line from the agent and scanning the board),
"write", "remove", "identity", "reboot" (waiting for the agent's hello) or "step" (any other step).
"bytes" counts what has been written to the board so far; "total" is the whole image (a board
that already holds part of it is written less and is done short of 100 percent). One board that
fails does not stop the others: every board gets one result.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from host_tools.errors import DbchError
from host_tools.firmware import flash
from host_tools.firmware.image_build import build_bootloader
from host_tools.link.side_by_side import side_by_side

_WRITE = re.compile(r"^\s*write (\S+) \((\d+) bytes\)")
_REMOVE = re.compile(r"^\s*remove (\S+)")


@dataclass
class Outcome:
    """What became of one board: its FlashResult, or the error that stopped it."""

    port: str
    device: str | None = None
    result: flash.FlashResult | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.result is not None and self.error is None

    @property
    def eui(self) -> str | None:
        return ((self.result.hello if self.result else None) or {}).get("eui")

    def event(self) -> dict:
        """The final "result" event of this board."""
        ev = {"event": "result", "port": self.port, "ok": self.ok}
        if self.ok:
            ev["eui"] = self.eui
            ev["flash"] = dict(self.result.__dict__)
        else:
            ev["error"] = self.error
        return ev


def image_total(slot: dict[str, bytes], board: str, signing_key: bytes | None, debug: bool = False) -> int:
    """The bytes flash.flash would write to an empty board: slot A, main.py, the bootloader, the
    boot state and the signing key."""
    extra = len(flash.MAIN_PY.format(board=board).encode()) + len(flash.boot_state_json())
    extra += sum(len(d) for d in build_bootloader(debug).values()) + len(signing_key or b"")
    return sum(len(d) for d in slot.values()) + extra


class _Tracker:
    """One board's progress messages from flash.flash, as progress events."""

    def __init__(self, port: str, total: int, emit: Callable[[dict], None]):
        self.port, self.total, self.emit = port, total, emit
        self.written = 0

    def __call__(self, message: str) -> None:
        text = message.strip()
        phase = "step"
        if m := _WRITE.match(text):
            phase, self.written = "write", self.written + int(m.group(2))
        elif _REMOVE.match(text):
            phase = "remove"
        elif text.startswith("compiled "):
            phase = "connect"
        elif text.startswith("identity"):
            phase = "identity"
        elif text.startswith("rebooted"):
            phase = "reboot"
        self.emit(
            {
                "event": "progress",
                "port": self.port,
                "phase": phase,
                "message": text,
                "bytes": self.written,
                "total": self.total,
                "percent": round(100.0 * self.written / self.total, 1) if self.total else 100.0,
            }
        )


def _reason(e: BaseException) -> str:
    """The message of an error as the summary shows it: a DbchError's says what to do."""
    return str(e) if isinstance(e, DbchError) else f"{type(e).__name__}: {e}"


def flash_many(
    targets: Sequence[tuple[str, str | BaseException]],
    board: str,
    *,
    baud: int = 115200,
    timeout: float = 20.0,
    signing_key: bytes | None = None,
    version: str | None = None,
    on_event: Callable[[dict], None] | None = None,
    debug: bool = False,
    layout: str = "auto",
) -> list[Outcome]:
    """Flash board's agent to every target at once, one thread each. targets: (port as given,
    its device path, or the error that resolving it gave: that board fails with it). on_event
    is called with each event (see the module's docstring), one call at a time. layout: slot A's
    on each board (flash.LAYOUTS). The outcomes, in
    the order of targets. BuildError when the image cannot be built (no board is touched)."""
    from mpremote.transport_serial import SerialTransport  # noqa: F401  (imported once, not by each thread)

    from agent import VERSION

    version = version or VERSION
    slot = flash.slot_files(board, version, debug)  # compiled once for every board
    total = image_total(slot, board, signing_key, debug)
    lock = threading.Lock()

    def emit(ev: dict) -> None:
        if on_event is not None:
            with lock:
                on_event(ev)

    outcomes = [Outcome(port=port) for port, _ in targets]
    todo = []
    for outcome, (_port, device) in zip(outcomes, targets):
        if isinstance(device, BaseException):  # it could not be resolved: that is its result
            outcome.error, outcome.exception = _reason(device), device
            emit(outcome.event())
        else:
            outcome.device = device
            todo.append(outcome)

    def job(outcome: Outcome) -> Callable[[], flash.FlashResult]:
        progress = _Tracker(outcome.port, total, emit)
        return lambda: flash.flash(
            outcome.device,
            board,
            baud=baud,
            progress=progress,
            timeout=timeout,
            signing_key=signing_key,
            version=version,
            slot=slot,
            debug=debug,
            layout=layout,
        )

    def done(i: int, result: flash.FlashResult | None, error: BaseException | None) -> None:
        outcome = todo[i]
        outcome.result = result
        if error is not None:
            outcome.error, outcome.exception = _reason(error), error
        emit(outcome.event())

    side_by_side([job(o) for o in todo], names=[f"flash {o.port}" for o in todo], on_done=done)
    return outcomes
