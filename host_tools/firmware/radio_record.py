"""The radio record of a board whose image follows it (the virtual board, boards/unix.py: the file
data/radio in its flash names "sim", a radio such as sx1262, or a board that carries one): `dbch
flash` reads it before anything is copied and builds the image for that radio
(host_tools.firmware.build.board_radio), read in the same paste as the listing of the board's
files (host_tools.firmware.flash). The agent is asked about it with the rest of what is
flashed (host_tools.firmware.flash.asked_paths), so a record changed since the last flash is no
warm re-flash: the image follows the record."""

from __future__ import annotations

from pathlib import Path

from host_tools.errors import DbchError
from host_tools.firmware import transfer

_READ_TEXT = Path(__file__).resolve().parents[1] / "onboard" / "read_text.py"
# where such a board keeps it (boards/unix.py: DATA_DIR "data", as data/eui)
PATH = "data/radio"


class RadioRecordError(DbchError):
    """The board's radio record names none of its radios; the message says what to write."""


def program(board: str) -> str:
    """The read of board's radio record, a raw REPL program (host_tools/onboard/read_text.py) that
    `dbch flash` pastes after the listing of the board's files, in one paste: it prints one line,
    the record's text as a repr (a quote first: is_record), or nothing. "" for a board with one
    radio, which has no record."""
    from host_tools.firmware.build import board_radios

    if not board_radios(board):
        return ""
    return transfer.compact(_READ_TEXT.read_text()) + f"read_text({PATH!r})\ndel read_text\n"


def is_record(line: str) -> bool:
    """Whether a line of the board's answer is what program() printed (a repr of text)."""
    return line[:1] in ("'", '"')


def radio_of(board: str, line: str | None) -> tuple[str | None, str | None]:
    """(the radio the board's radio record names, or None for a board with one radio; the
    record's text, None without one) from the line program() printed (None: none);
    RadioRecordError for a record that names none of its radios."""
    from host_tools.firmware.build import BuildError, board_radio, board_radios

    if not board_radios(board):
        return None, None
    import ast

    text = ast.literal_eval(line) if line else None
    try:
        return board_radio(board, text), text
    except BuildError as e:
        raise RadioRecordError(
            f"the board's radio record ({PATH}): {e}; write one of them there and flash again"
        ) from e


def with_record(wanted: dict[str, bytes], record: str | None) -> dict[str, bytes]:
    """wanted, and the radio record the board holds (flash leaves it as it is)."""
    return dict(wanted, **{PATH: record.encode()}) if record is not None else wanted
