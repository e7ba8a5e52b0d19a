"""The compressed copy of `dbch flash`: the files that changed go to the board as one deflate stream.
Over 400 lines: the pastes that start the loader (and run the hash listing through its first
paste) and the copy it serves are one protocol on one line; splitting them would split it.

flash pastes the loader (host_tools/onboard/file_loader.py, which tells the protocol in full)
through the raw REPL once, after the hash listing: a few lines (host_tools/onboard/loader_boot.py)
that import `deflate`, take the loader's text as raw deflate off the line as raw bytes (1.8 KB,
zopfli's, where its text is 4.9 KB: in base64 in the paste it took 2.4 KB), PIECE bytes at a time
as the board asks for them with ".", and run it; a board without `deflate` says "DBCHLOAD 0" at
once and is sent nothing. The loader owns the line until it returns to the raw REPL:

    board: "DBCHLOAD 1 W\\n"  (W: the deflate window it affords, log2 bytes) or "DBCHLOAD 0\\n" (no
           `deflate` module: send_files returns None and flash copies plainly, as before)
    host:  frames "D" + len (uint16 LE) + CRC-32 (uint32 LE) + up to CHUNK bytes of one raw deflate
           stream (window W), then "E" + 6 zero bytes ("X" + 6 zero bytes: the host gives up)
    board: "." for each D frame taken off the line (the host keeps at most WINDOW unanswered),
           "K N" as the Nth file is written, "Z N" once all are in place, or "R reason" when it refuses

The stream, decompressed, is one record a file: path length (1 byte), path (UTF-8), size (uint32
LE), content; a zero path length ends the list, and the SHA-256 of all before it follows (one
digest for all the files: 32 bytes on the line, where one a file took 2 KB in a full flash). The
stream is not flushed between files, so the files share one window: repeated names and code across
modules compress too. It is compressed whole before the first frame: by zlib at level 9, or, on a
slow line (the loader's paste came at less than SLOW_LINE bytes a second: a UART) when the window
is 32 KB, by zopfli, about 2 % smaller for a hundred times the encoder's time (made on a thread
while the loader is pasted, which hides most of that time on such a line), kept in dbch's cache by
what it compresses (compress once: another board, or the same one flashed again from empty, gets
it at once). The host says which file is written as the loader says it is.

The loader writes each file beside its place and renames them all into place only once the
SHA-256 matches, so a damaged or malformed frame, a hash that differs or a link that is cut leaves
every file as it was (and a rename that fails, those before it complete): TransferError says
which, and flash turns it into a FlashError.
"""

from __future__ import annotations

import ast
import hashlib
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.firmware.encoders import ZopfliBeside, zlib_stream, zopfli_stream

LOADER = Path(__file__).resolve().parents[1] / "onboard" / "file_loader.py"
LOADER_BOOT = Path(__file__).resolve().parents[1] / "onboard" / "loader_boot.py"
CHUNK = 512  # payload bytes a frame: a frame and a half fit a small board's receive buffer
WINDOW = 2  # frames sent and not yet answered: the next one is on its way while one is decoded
WBITS = 15  # the largest deflate window asked for (32 KB); the loader takes less on a full heap
LOADER_WBITS = 13  # the window the loader's own text is compressed for (8 KB: it is 4.9 KB)
PIECE = 256  # bytes of the loader's stream sent at a time (two on their way at most)
SLOW_LINE = 40_000  # bytes a second: on a slower line zopfli's smaller stream is worth its time
IDLE_MS = 5000  # the loader gives up when nothing comes for this long (the host is gone)
ANSWER_S = 8.0  # the host gives up when the board says nothing for this long (more than IDLE_MS)
_HEAD = struct.Struct("<BHI")


class TransferError(DbchError):
    """The compressed copy failed; nothing half-written is in place. The message says what to do."""


@dataclass
class Sent:
    files: int
    bytes: int  # the files' bytes
    wire_bytes: int  # what went on the line for them: frames with their headers
    wbits: int
    seconds: float
    encoder: str = "zlib"  # what compressed the stream: "zlib" or "zopfli"


def compact(text: str) -> str:
    """A program's text in fewer bytes for the raw REPL: without its comment lines and with one
    space of indentation a level (for text with no multi-line strings)."""
    lines = []
    for line in text.splitlines():
        code = line.lstrip(" ")
        if code and not code.startswith("#"):
            lines.append(" " * ((len(line) - len(code)) // 4) + code)  # one space a level, not four
    return "\n".join(lines) + "\n"


def _program(path: Path, call: str, keep: bool = False) -> str:
    """An on-board file's text (compact) for the raw REPL, the call that runs it, and (unless
    keep) a line that deletes its names from the REPL's globals."""
    text = path.read_text()
    names = []
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.Import):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
    return f"{compact(text)}{call}\n" + ("" if keep else f"del {', '.join(names)}\n")


def loader_source() -> str:
    """What the board runs: the loader (compact), the call (with CHUNK, WBITS and IDLE_MS), and a
    line that deletes its names."""
    return _program(LOADER, f"serve({CHUNK}, {WBITS}, {IDLE_MS}, True)")


def deflated(text: str) -> bytes:
    """A program's text as raw deflate for a window of 2**LOADER_WBITS: zopfli's (kept in dbch's
    cache) when the text fits that window, so no distance in its 32 KB-window stream reaches
    further; else, or without zopfli, zlib's."""
    src = text.encode()
    data = zopfli_stream(src) if len(src) <= 1 << LOADER_WBITS else None
    return data if data is not None else zlib_stream(src, LOADER_WBITS)


def loader_blob() -> bytes:
    """loader_source, deflated."""
    return deflated(loader_source())


def loader_program(use_deflate: bool = True, blob_bytes: int = 0, booted: bool = False, keep: bool = False) -> str:
    """The text pasted into the raw REPL (host_tools/onboard/loader_boot.py): on a board with
    `deflate`, it takes blob_bytes of a program's deflate stream (the loader's: loader_blob) off
    the line as raw bytes, PIECE at a time when asked, and runs it; on one without, or when
    use_deflate is false, it says "DBCHLOAD 0". It leaves no name behind, unless keep (boot() stays
    defined for the next paste); booted: boot() is defined already (only the call goes)."""
    call = f"boot({blob_bytes}, {LOADER_WBITS}, {PIECE}, {IDLE_MS}, {use_deflate})"
    if booted:
        return call + ("\n" if keep else "\ndel boot\n")
    return _program(LOADER_BOOT, call, keep)


def exec_deflated(t, text: str, port: str = "the board") -> bytes | None:
    """Run a program's text on the board behind mpremote transport `t` (in its raw REPL) as raw
    deflate through boot() (host_tools/onboard/loader_boot.py), which stays defined for the copy
    after it (send_files(booted=True)); its output. None when the board has no `deflate`: nothing
    ran, run it plainly. TransferError if it failed."""
    blob = deflated(text)
    n = -(-len(blob) // PIECE)
    try:
        t.exec_raw_no_follow(loader_program(blob_bytes=len(blob), keep=True))
        head = b""
        asked = sent = 0
        deadline = time.monotonic() + ANSWER_S
        while asked < n + 1:  # a "." first, then one before each piece it reads
            b = t.serial.read(1)
            if not b:
                if time.monotonic() > deadline:
                    raise TransferError(
                        f"the board on {port} stopped answering (nothing for {ANSWER_S:g} s): flash again"
                    )
                continue
            if b != b".":
                head = b  # "DBCHLOAD 0", or an error's end of output
                break
            asked += 1
            deadline = time.monotonic() + ANSWER_S
            while sent < n and asked > sent:
                t.serial.write(blob[sent * PIECE : (sent + 1) * PIECE])
                sent += 1
        if head == b"\x04":
            out, err = b"", t.read_until(1, b"\x04", timeout=10)[:-1]
        else:
            out, err = t.follow(timeout=10)
    except TransferError:
        raise
    except Exception as e:  # mpremote's TransportError, or the line
        raise TransferError(f"could not run a program on {port} ({e}): flash again") from e
    if err:
        raise TransferError(f"a program failed on {port}: {err.decode(errors='replace').strip().splitlines()[-1]}")
    out = (head if head != b"\x04" else b"") + out
    return None if out.startswith(b"DBCHLOAD 0") else out


def records(files: Iterable[tuple[str, bytes]]) -> Iterable[tuple[str, bytes, bytes]]:
    """(path, record head, content) for each file, as the stream carries them."""
    for path, data in files:
        p = path.encode()
        if not 0 < len(p) < 256:
            raise TransferError(f"cannot send {path!r}: a path is 1 to 255 bytes of UTF-8")
        yield path, bytes([len(p)]) + p + struct.pack("<I", len(data)), data


def stream(files: Iterable[tuple[str, bytes]]) -> bytes:
    """The stream before compression: the records, the end of the list, their SHA-256."""
    raw = b"".join(head + data for _path, head, data in records(files)) + b"\0"
    return raw + hashlib.sha256(raw).digest()


def frame(payload: bytes) -> bytes:
    return _HEAD.pack(0x44, len(payload), zlib.crc32(payload)) + payload


END_FRAME = _HEAD.pack(0x45, 0, 0)
STOP_FRAME = _HEAD.pack(0x58, 0, 0)  # "X": the host gives up (the loader cleans up and returns)


class _Answers:
    """What the loader says, read off the serial line as it comes."""

    def __init__(self, ser, port: str):
        self.ser = ser
        self.port = port
        self.acks = 0
        self.written = 0
        self.greeting: list[str] | None = None
        self.done: int | None = None
        self.refused: str | None = None
        self.eofs = 0  # the raw REPL's ends of output seen: 1, the loader returned; 2, back at its prompt
        self.err = bytearray()  # the error output between them (a traceback)
        self.after = bytearray()  # what came after the second (the prompt, if read with it)
        self._line = bytearray()
        self._in_line = False

    def read(self, wait: bool) -> None:
        """Take what has come; with wait, block until something comes (TransferError after
        ANSWER_S of silence)."""
        deadline = time.monotonic() + ANSWER_S
        while True:
            try:
                n = self.ser.in_waiting
                if n and not self.streaming:
                    n = 1  # the raw REPL's prompt after the loader's output is mpremote's to read
                data = self.ser.read(n or 1) if (n or wait) else b""
            except OSError as e:  # serial.SerialException is one
                raise TransferError(
                    f"the link to the board on {self.port} was lost during the copy ({e}): flash again"
                ) from e
            for b in data:
                self._take(b)
            if data or not wait:
                return
            if time.monotonic() > deadline:
                raise TransferError(
                    f"the board on {self.port} stopped answering during the copy (nothing for {ANSWER_S:g} s): "
                    "reset it and flash again"
                )

    @property
    def streaming(self) -> bool:
        """The loader runs and answers frames (what comes is read as it comes, in bulk)."""
        return self.greeting is not None and self.done is None and self.refused is None and not self.eofs

    @property
    def ended(self) -> bool:
        """The loader returned (or stopped): the raw REPL has the line."""
        return self.eofs > 0

    def _take(self, b: int) -> None:
        if self.eofs:
            if b == 0x04:
                self.eofs += 1
            elif self.eofs == 1:
                self.err.append(b)
            else:
                self.after.append(b)
            return
        if self._in_line:
            if b == 0x0A:
                self._in_line = False
                self._on_line(self._line.decode(errors="replace").strip())
                self._line.clear()
            else:
                self._line.append(b)
        elif b == 0x2E:  # "."
            self.acks += 1
        elif b == 0x04:  # the raw REPL's end of output: the loader is no longer running
            self.eofs = 1
        elif b not in b"\r\n":
            self._in_line = True
            self._line.append(b)

    def _on_line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "DBCHLOAD":
            self.greeting = rest.split()
        elif word == "K" and rest.isdigit():
            self.written = int(rest)
        elif word == "Z" and rest.isdigit():
            self.done = int(rest)
        elif word == "R":
            self.refused = rest
        elif self.refused is None and self.done is None and self.greeting is not None:
            self.refused = f"unexpected answer {line!r}"


def _leave(answers: _Answers) -> str:
    """Wait until the loader has returned to the raw REPL (its output, the REPL's end of output,
    the error output, a second end of output); the error output."""
    while answers.eofs < 2:
        answers.read(wait=True)
    if b">" in answers.after:
        answers.ser.write(b"\x01")  # the prompt was read with the loader's last answer: a new one
    return answers.err.decode(errors="replace").strip()


def send_files(
    t,
    files: list[tuple[str, bytes]],
    *,
    port: str = "the board",
    say: Callable[[str], None] | None = None,
    use_deflate: bool = True,
    booted: bool = False,
) -> Sent | None:
    """Copy files ((path, content), in the order given) to the board behind mpremote transport
    `t` (in its raw REPL) through the loader; the board is in its raw REPL again after. None when
    the board cannot take a compressed copy (no `deflate`, or the loader does not run there):
    nothing was written, copy plainly. TransferError when the copy failed: every file is then
    either as it was or complete. booted: boot() is defined on the board already (exec_deflated
    ran the hash listing through it), so only its call is pasted."""
    say = say or (lambda _msg: None)
    t0 = time.monotonic()
    answers = _Answers(t.serial, port)
    blob = loader_blob()
    program = loader_program(use_deflate=use_deflate, blob_bytes=len(blob), booted=booted)
    raw = stream(files)
    thorough = ZopfliBeside(raw) if use_deflate else None
    try:
        t.exec_raw_no_follow(program)
    except Exception as e:  # mpremote's TransportError, or the line
        raise TransferError(f"could not start the loader on {port} ({e}): flash again") from e
    pieces = 0  # of the loader's stream sent: piece k once the board has said k + 1 "."
    try:
        while answers.greeting is None and not answers.ended:
            answers.read(wait=True)
            while pieces * PIECE < len(blob) and answers.acks > pieces:
                t.serial.write(blob[pieces * PIECE : (pieces + 1) * PIECE])
                pieces += 1
    except OSError as e:
        raise TransferError(f"the link to the board on {port} was lost during the copy ({e}): flash again") from e
    answers.acks = 0  # from here, the frames' answers
    if answers.greeting is None or answers.greeting[0] != "1":
        why = _leave(answers)
        say(
            "  the board has no deflate module: plain copy"
            if answers.greeting is not None
            else f"  the loader does not run on this board ({why.splitlines()[-1] if why else 'no answer'}): plain copy"
        )
        return None
    wbits = int(answers.greeting[1])
    line_rate = (len(program) + len(blob)) / max(time.monotonic() - t0, 1e-6)  # bytes a second, the start included
    sent = wire = told = 0
    encoder = ""

    def tell() -> None:
        """Say each file the loader has written since last told."""
        nonlocal told
        while told < min(answers.written, len(files)):
            path, data = files[told]
            say(f"  write {path} ({len(data)} bytes)")
            told += 1

    def stopped() -> bool:
        return answers.refused is not None or answers.ended

    try:
        data, encoder = None, "zopfli"
        if thorough is not None and wbits == 15 and line_rate < SLOW_LINE:
            data = thorough.result()
        if data is None:
            data, encoder = zlib_stream(raw, wbits), "zlib"
        for i in range(0, len(data), CHUNK):
            while sent - answers.acks >= WINDOW and not stopped():
                answers.read(wait=True)
                tell()
            if stopped():
                break
            f = frame(data[i : i + CHUNK])
            t.serial.write(f)
            sent += 1
            wire += len(f)
            answers.read(wait=False)
            tell()
        if not stopped():
            t.serial.write(END_FRAME)
            wire += len(END_FRAME)
            while answers.done is None and not stopped():
                answers.read(wait=True)
                tell()
        tell()
    except OSError as e:
        raise TransferError(f"the link to the board on {port} was lost during the copy ({e}): flash again") from e
    except BaseException:
        # stopped here (Ctrl-C, a bug): the loader is told at once rather than after IDLE_MS
        try:
            t.serial.write(STOP_FRAME)
        except Exception:  # noqa: BLE001 - the line may be gone too; the loader's timeout is left
            pass
        raise
    if answers.refused is not None:
        _leave(answers)
        raise TransferError(
            f"the board on {port} refused the copy: {answers.refused} (nothing half-written is in place): flash again"
        )
    err = _leave(answers)
    if answers.done != len(files) or err:
        raise TransferError(
            f"the loader on {port} stopped after writing {answers.written} of {len(files)} files"
            + (f": {err.splitlines()[-1]}" if err else "")
            + "; nothing half-written is in place: flash again"
        )
    total = sum(len(d) for _p, d in files)
    seconds = time.monotonic() - t0
    say(
        f"  {len(files)} files, {total} bytes sent as {wire} ({100 * wire / max(total, 1):.0f}%, {encoder}, "
        f"deflate window {1 << wbits} bytes) in {seconds:.1f} s"
    )
    return Sent(len(files), total, wire, wbits, round(seconds, 3), encoder)
