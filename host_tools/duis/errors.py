"""The errors of the DUIS front: one family, DuisError (a DbchError), whose messages say what is
wrong and what to do."""

from __future__ import annotations

from host_tools.errors import DbchError


class DuisError(DbchError, ValueError):
    """Base of the DUIS front's errors; the message says what is wrong and what to do."""


class DuisConfigError(DuisError):
    """No usable DUIS schema folder."""


class DuisParseError(DuisError):
    """Not a readable DUIS request (malformed XML, wrong root, missing or bad header item)."""


class DuisValidationError(DuisError):
    """The XML does not validate against the DUIS schema; `errors` lists the schema errors and
    `version` is the schema's DUIS version."""

    def __init__(self, errors: list[str], version: str):
        shown = "; ".join(errors[:5]) + ("; ..." if len(errors) > 5 else "")
        super().__init__(
            "not valid against the DUIS {} schema ({} error{}): {}".format(
                version, len(errors), "" if len(errors) == 1 else "s", shown
            )
        )
        self.errors = errors
        self.version = version


class DuisRenderError(DuisError):
    """Data that cannot be rendered as DUIS XML."""
