"""The DCC's DUIS schema and DCC Boxed request templates, fetched once from npm packages.

The project ships neither. When no schema folder is given (--schema DIR, $DBCH_DUIS_SCHEMA_DIR),
dbch uses a copy fetched with npm into the user's cache (host_tools.duis.schema):

    @smartdcc/duis-sign-wrap 0.1.2  dist/tool.jar holds "DUIS Schema V5.1.xsd", "MMC Schema
                                    V5.1.xsd" and xmldsig-core-schema.xsd: the schema folder
    @smartdcc/duis-templates 0.7.0  templates/*.XML: the DCC Boxed request templates (among
                                    them DBCH01-05 and CS06)

DUIS 5.1 declares every element this hub reads and writes, and its schemaVersion is an
xs:decimal, so the "5.4" documents dbch writes validate against it; a DCC User's own DUIS 5.4
folder, given with --schema DIR or $DBCH_DUIS_SCHEMA_DIR, is preferred.

Each package is fetched by name at a pinned version with `npm pack` (no scripts run), its
tarball checked against the pinned sha512 integrity, and the files needed extracted into
<$XDG_CACHE_HOME or ~/.cache>/dbch/duis/<package>-<version>/: first into a temporary folder
beside it, then renamed into place, so a folder there is always complete. The command
`dbch schema fetch|show` fetches ahead of time, for a machine that will later be offline, and
says where the files are.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import DbchError
from host_tools.paths import cache_dir


@dataclass(frozen=True)
class Package:
    name: str  # the npm package name
    version: str  # pinned
    integrity: str  # the tarball's sha512, as npm records it

    @property
    def spec(self) -> str:
        return "{}@{}".format(self.name, self.version)

    @property
    def folder_name(self) -> str:
        return "{}-{}".format(self.name.lstrip("@").replace("/", "-"), self.version)


SCHEMA_PACKAGE = Package(
    "@smartdcc/duis-sign-wrap",
    "0.1.2",
    "sha512-75KX971ymBkNyL2e761c4HYQ4OinTCFfqW+SoCRtFC9cWm4CirKQ5CfSUp0zCFH8LcSyHhDwRL0cVtOj5NeIHg==",
)
TEMPLATES_PACKAGE = Package(
    "@smartdcc/duis-templates",
    "0.7.0",
    "sha512-ASkoKAuIW/Io0jTFmsRVnaPzm6Z5IIefipJq3aD6fknxqSdSxTrWQ6BxktvuVDPYO2SWbJATzg6oDEKxwNWb2Q==",
)
SCHEMA_VERSION = "5.1"  # the DUIS version in SCHEMA_PACKAGE
SCHEMA_JAR = "package/dist/tool.jar"
SCHEMA_FILES = ("DUIS Schema V5.1.xsd", "MMC Schema V5.1.xsd", "xmldsig-core-schema.xsd")
TEMPLATES_PREFIX = "package/templates/"
TEMPLATES_SUBDIR = "templates"
# The DCC Boxed templates of this hub's services (the templates folder holds many others).
HUB_TEMPLATES = (
    "CS06_11.3_FUTURE_DATED_SUCCESS_REQUEST_DUIS.XML",
    "CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML",
    "DBCH01_6.31_SUCCESS_REQUEST_DUIS.XML",
    "DBCH03_6.30_SUCCESS_REQUEST_DUIS.XML",
    "DBCH04_6.28_SUCCESS_REQUEST_DUIS.XML",
    "DBCH05_6.29_SUCCESS_REQUEST_DUIS.XML",
)
LICENSE_MEMBER = "package/LICENSE"  # both packages are GPL-3.0-or-later: the licence goes along
SOURCE_FILE = "dbch-source.json"  # what was fetched: package, version, integrity
NPM_TIMEOUT = 300.0

GIVE = "give the folder holding the DUIS schema with --schema DIR / $DBCH_DUIS_SCHEMA_DIR"
HOW = "install Node.js's npm, or " + GIVE


class DuisAssetsError(DbchError):
    """The DUIS schema or templates cannot be fetched; the message says what to do."""


@dataclass(frozen=True)
class Assets:
    schema_dir: Path
    schema_version: str
    templates_dir: Path

    def to_json(self) -> dict:
        return {
            "schema_dir": str(self.schema_dir),
            "schema_version": self.schema_version,
            "templates_dir": str(self.templates_dir),
        }


# -- where -------------------------------------------------------------------------------------


def cache_root() -> Path:
    """<user cache>/dbch/duis"""
    return cache_dir("duis")


def package_dir(package: Package) -> Path:
    return cache_root() / package.folder_name


def _schema_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in SCHEMA_FILES)


def _templates_complete(folder: Path) -> bool:
    return (folder / TEMPLATES_SUBDIR).is_dir() and any((folder / TEMPLATES_SUBDIR).glob("*.XML"))


def cached_schema_dir() -> Path | None:
    """The fetched schema folder, or None if it has not been fetched."""
    folder = package_dir(SCHEMA_PACKAGE)
    return folder if _schema_complete(folder) else None


def cached_templates_dir() -> Path | None:
    """The fetched templates folder, or None if it has not been fetched."""
    folder = package_dir(TEMPLATES_PACKAGE)
    return folder / TEMPLATES_SUBDIR if _templates_complete(folder) else None


def packages() -> dict:
    """The two packages: which, where their cache folders are, and whether they are fetched."""
    schema_folder, templates_folder = cached_schema_dir(), cached_templates_dir()
    return {
        "schema": {
            "package": SCHEMA_PACKAGE.name,
            "version": SCHEMA_PACKAGE.version,
            "schema_version": SCHEMA_VERSION,
            "dir": str(package_dir(SCHEMA_PACKAGE)),
            "fetched": schema_folder is not None,
        },
        "templates": {
            "package": TEMPLATES_PACKAGE.name,
            "version": TEMPLATES_PACKAGE.version,
            "dir": str(package_dir(TEMPLATES_PACKAGE) / TEMPLATES_SUBDIR),
            "fetched": templates_folder is not None,
            "count": len(list(templates_folder.glob("*.XML"))) if templates_folder else 0,
        },
    }


# -- fetching ----------------------------------------------------------------------------------


# What fetching says as it goes ("fetching ... with npm into ...", "fetched ... into ..."): a
# callable that takes the message, or None for nothing. note() is the default: stderr.
Progress = Callable[[str], None]


def note(message: str) -> None:
    """Progress as dbch shows it: "dbch: message" on stderr."""
    print("dbch: " + message, file=sys.stderr, flush=True)


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise DuisAssetsError(
            "cannot fetch the DUIS schema and templates: npm is not on PATH ({} and {} come from npm "
            "packages); {}".format(SCHEMA_PACKAGE.spec, TEMPLATES_PACKAGE.spec, HOW)
        )
    return npm


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _npm_pack(package: Package, dest: Path) -> bytes:
    """The package's tarball, fetched with `npm pack` into `dest` and checked."""
    npm = _npm()
    command = [npm, "pack", package.spec, "--pack-destination", str(dest), "--ignore-scripts", "--silent"]
    try:
        done = subprocess.run(
            command, cwd=str(dest), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=NPM_TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        raise DuisAssetsError(
            "npm pack {} took more than {:.0f} s (is the network reachable?); {}".format(
                package.spec, NPM_TIMEOUT, GIVE
            )
        ) from e
    except OSError as e:
        raise DuisAssetsError("cannot run {}: {}; {}".format(npm, e, HOW)) from e
    tarballs = sorted(dest.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        detail = " | ".join(line for line in (done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise DuisAssetsError(
            "npm pack {} failed (exit status {}){}: check the network and npm's proxy settings, or {}".format(
                package.spec, done.returncode, ": " + detail if detail else "", GIVE
            )
        )
    data = tarballs[0].read_bytes()
    got = _integrity(data)
    if got != package.integrity:
        raise DuisAssetsError(
            "{} from npm is not the tarball this version of dbch expects (integrity {}, expected {}); {}".format(
                package.spec, got, package.integrity, GIVE
            )
        )
    return data


def _member(tar: tarfile.TarFile, name: str, package: Package) -> bytes:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise DuisAssetsError("{} has no {}".format(package.spec, name))
    return handle.read()


def _extract_schema(tar: tarfile.TarFile, out: Path) -> None:
    jar = _member(tar, SCHEMA_JAR, SCHEMA_PACKAGE)
    try:
        with zipfile.ZipFile(io.BytesIO(jar)) as z:
            for name in SCHEMA_FILES:
                (out / name).write_bytes(z.read(name))
    except (KeyError, zipfile.BadZipFile) as e:
        raise DuisAssetsError(
            "{}: {} does not hold the DUIS schema: {}".format(SCHEMA_PACKAGE.spec, SCHEMA_JAR, e)
        ) from e


def _extract_templates(tar: tarfile.TarFile, out: Path) -> None:
    folder = out / TEMPLATES_SUBDIR
    folder.mkdir()
    count = 0
    for member in tar.getmembers():
        name = member.name[len(TEMPLATES_PREFIX) :]
        # only plain files directly in templates/, by their base name: nothing lands elsewhere
        if not member.name.startswith(TEMPLATES_PREFIX) or not member.isfile() or not name.upper().endswith(".XML"):
            continue
        if "/" in name or "\\" in name or name.startswith("."):
            continue
        (folder / name).write_bytes(_member(tar, member.name, TEMPLATES_PACKAGE))
        count += 1
    if not count:
        raise DuisAssetsError("{} has no templates under {}".format(TEMPLATES_PACKAGE.spec, TEMPLATES_PREFIX))


def _install(package: Package, extract, complete, progress: Progress | None) -> Path:
    """The package's cache folder, fetched and extracted now if it is not complete."""
    final = package_dir(package)
    if complete(final):
        return final
    _npm()  # before anything is said or made
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=str(root)))
    except OSError as e:
        raise DuisAssetsError("cannot write the cache folder {}: {}".format(root, e)) from e
    try:
        if progress:
            progress("fetching {} with npm into {}".format(package.spec, final))
        (work / "npm").mkdir()
        data = _npm_pack(package, work / "npm")
        out = work / package.folder_name
        out.mkdir()
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                extract(tar, out)
                (out / "LICENSE").write_bytes(_member(tar, LICENSE_MEMBER, package))
        except tarfile.TarError as e:
            raise DuisAssetsError("{}: not a readable tarball: {}".format(package.spec, e)) from e
        (out / SOURCE_FILE).write_text(
            json.dumps({"package": package.name, "version": package.version, "integrity": package.integrity}) + "\n"
        )
        if final.exists() and not complete(final):  # left by hand, or by an older layout
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(out, final)
        except OSError:
            if not complete(final):  # else another process put it there first
                raise
        if progress:
            progress("fetched {} into {}".format(package.spec, final))
        return final
    except OSError as e:
        raise DuisAssetsError("cannot write {}: {}".format(final, e)) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch_schema(progress: Progress | None = note) -> Path:
    """The registry copy of the DUIS schema folder, fetched now if it is not in the cache."""
    return _install(SCHEMA_PACKAGE, _extract_schema, _schema_complete, progress)


def templates_dir(progress: Progress | None = note) -> Path:
    """The registry copy of the DCC Boxed templates folder, fetched now if it is not in the cache."""
    return _install(TEMPLATES_PACKAGE, _extract_templates, _templates_complete, progress) / TEMPLATES_SUBDIR


def fetch(progress: Progress | None = note) -> Assets:
    """Both packages in the cache (fetched now where missing): where the schema and templates are."""
    return Assets(fetch_schema(progress), SCHEMA_VERSION, templates_dir(progress))
