"""The DCC's DUIS schema: which folder, loading it, and validating documents against it.

The schema is not part of the project. Functions that need it take a schema folder as a
parameter, else $DBCH_DUIS_SCHEMA_DIR, else the DUIS 5.1 schema of the npm package
@smartdcc/duis-sign-wrap, fetched once into the user's cache (host_tools.duis.assets; with npm,
and a note on stderr). A folder holds "DUIS Schema V5.4.xsd" - a DCC User's own copy, preferred -
or "DUIS Schema V5.1.xsd", with the files it imports ("MMC Schema V5.x.xsd",
xmldsig-core-schema.xsd). DUIS 5.1 declares every element this front reads and writes, and
schemaVersion is an xs:decimal in both, so the "5.4" documents written here validate against
either; `schema_version()` says which one a folder holds. Loading a schema with xmlschema (pure
Python) takes about 0.6-0.8 s on a desktop machine, so a loaded schema is kept per folder for the
life of the process (`schema_load_time()` reports the measured figure).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from host_tools.duis import assets
from host_tools.duis.errors import DuisConfigError, DuisParseError, DuisRenderError
from host_tools.duis.xml import parse_xml, short_name

SCHEMA_FILE = "DUIS Schema V5.4.xsd"
# The schema files a folder may hold, preferred first, with their DUIS versions.
SCHEMA_FILES = {SCHEMA_FILE: "5.4", "DUIS Schema V5.1.xsd": "5.1"}
ENV_SCHEMA_DIR = "DBCH_DUIS_SCHEMA_DIR"

_SCHEMAS: dict[Path, Any] = {}
_LOAD_SECONDS: dict[Path, float] = {}


def _schema_file(where: Path) -> str | None:
    return next((name for name in SCHEMA_FILES if (where / name).is_file()), None)


def schema_dir(
    explicit: str | os.PathLike[str] | None = None,
    *,
    fetch: bool = True,
    progress: assets.Progress | None = assets.note,
) -> Path:
    """The DUIS schema folder: `explicit`, else $DBCH_DUIS_SCHEMA_DIR, else the copy fetched from
    the npm package (host_tools.duis.assets), fetched now if it is not in the cache and `fetch`
    is true - saying so through `progress` (by default on stderr). The folder must hold "DUIS
    Schema V5.4.xsd" or "DUIS Schema V5.1.xsd"; DuisConfigError, saying what to do, if it does
    not or none can be had."""
    how = (
        "give the folder holding the DCC's {!r} (and the files it imports) with --schema DIR "
        "or the environment variable {}".format(SCHEMA_FILE, ENV_SCHEMA_DIR)
    )
    if explicit is not None and str(explicit) != "":
        where, source = Path(explicit), "the given schema folder"
    elif os.environ.get(ENV_SCHEMA_DIR):
        where, source = Path(os.environ[ENV_SCHEMA_DIR]), "${}".format(ENV_SCHEMA_DIR)
    else:
        cached = assets.cached_schema_dir()
        if cached is not None:
            return cached.resolve()
        if not fetch:
            raise DuisConfigError("no DUIS schema configured or fetched (dbch schema fetch): " + how)
        if progress:
            progress(
                "no DUIS schema given (--schema DIR or ${}): using the DUIS {} schema of the npm package {}".format(
                    ENV_SCHEMA_DIR, assets.SCHEMA_VERSION, assets.SCHEMA_PACKAGE.spec
                )
            )
        try:
            return assets.fetch_schema(progress).resolve()
        except assets.DuisAssetsError as e:
            raise DuisConfigError("no DUIS schema: {}".format(e)) from e
    if not where.is_dir():
        raise DuisConfigError("{} {} is not a folder: {}".format(source, where, how))
    if _schema_file(where) is None:
        raise DuisConfigError(
            "{} {} has no {}: {}".format(source, where, " or ".join(repr(name) for name in SCHEMA_FILES), how)
        )
    return where.resolve()


def schema_version(directory: str | os.PathLike[str] | None = None) -> str:
    """The DUIS version of the schema a folder holds (resolved as schema_dir does): "5.4" or "5.1"."""
    return SCHEMA_FILES[_schema_file(schema_dir(directory))]


def load_schema(directory: str | os.PathLike[str] | None = None) -> Any:
    """The folder's DUIS schema (an xmlschema.XMLSchema; 5.4 if the folder holds it, else 5.1),
    loaded once per folder and then cached."""
    where = schema_dir(directory)
    schema = _SCHEMAS.get(where)
    if schema is None:
        import xmlschema  # slow to import as well: only when a schema is needed

        started = time.perf_counter()
        try:
            # allow="local": the schema's imports are files beside it; nothing is fetched remotely.
            schema = xmlschema.XMLSchema(str(where / _schema_file(where)), allow="local")
        except (xmlschema.XMLSchemaException, OSError) as e:
            raise DuisConfigError("cannot load the DUIS schema from {}: {}".format(where, e)) from e
        _LOAD_SECONDS[where] = time.perf_counter() - started
        _SCHEMAS[where] = schema
    return schema


def schema_load_time(directory: str | os.PathLike[str] | None = None) -> float | None:
    """Seconds the schema of that folder took to load, or None if it is not loaded."""
    return _LOAD_SECONDS.get(schema_dir(directory))


def _format_schema_error(err: Any) -> str:
    reason = getattr(err, "reason", None) or str(err).splitlines()[0]
    message = (getattr(err, "message", "") or "").strip().rstrip(":")
    text = "{}: {}".format(short_name(getattr(err, "path", None)), reason)
    if message and message not in reason and len(message) < 200:
        text += " ({})".format(message)
    return text


def validate(xml: bytes | str, directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Schema errors of a DUIS document (request, response, alert or MMC response); [] if valid.
    XML that is not well-formed gives one error saying so."""
    try:
        root = parse_xml(xml)
    except DuisParseError as e:
        return [str(e)]
    schema = load_schema(directory)
    return [_format_schema_error(err) for err in schema.iter_errors(root)]


def checked(xml: bytes, directory: str | os.PathLike[str] | None = None, what: str = "the document") -> bytes:
    """`xml` once it validates against the schema (found as schema_dir finds it); DuisRenderError
    with the schema's errors if it does not, DuisConfigError if no schema can be had. Every
    document dbch writes passes here before it leaves."""
    errors = validate(xml, directory)
    if errors:
        shown = "; ".join(errors[:5]) + ("; ..." if len(errors) > 5 else "")
        raise DuisRenderError(
            "{} would not be valid against the DUIS {} schema ({} error{}): {}".format(
                what, schema_version(directory), len(errors), "" if len(errors) == 1 else "s", shown
            )
        )
    return xml


def describe(explicit: str | None = None) -> dict:
    """Where the schema in use and the registry copies are, without fetching anything."""
    if explicit:
        source = "--schema"
    elif os.environ.get(ENV_SCHEMA_DIR):
        source = "$" + ENV_SCHEMA_DIR
    else:
        source = "npm package {}".format(assets.SCHEMA_PACKAGE.spec)
    try:
        folder = schema_dir(explicit, fetch=False)
        in_use = {"dir": str(folder), "version": schema_version(folder), "source": source, "error": None}
    except DuisConfigError as e:
        in_use = {"dir": None, "version": None, "source": None, "error": str(e)}
    return {"schema": in_use, "packages": assets.packages()}
