"""The DCC Boxed signing tool, run as a DCC User's tooling runs it: the jar of the DCC's npm package
@smartdcc/duis-sign-wrap (the same pinned, integrity-checked tarball host_tools.duis.assets takes
the DUIS 5.1 schema from), on a Java runtime (11 or newer; Debian's default-jre-headless).

How the jar is driven (from the package's dist/tool.js and the jar's own usage lines):

    java -cp tool.jar uk.co.smartdcc.boxed.xmldsig.Sign - [--preserveCounter] [CERT.pem] [KEY.pem]
    java -cp tool.jar uk.co.smartdcc.boxed.xmldsig.Validate - [CERT.pem]

The message comes on stdin ("-"); Sign writes the signed message and Validate the message without
its signature on stdout. Both check the message against the DUIS 5.1 schema first. Sign drops a
signature already there, replaces the Request ID's counter with the time in milliseconds unless
--preserveCounter, and signs with the certificate (PEM) and PKCS#8 PEM key given, or else with
the DCC Boxed test key of the Request ID's originator. Validate checks the signature with the
certificate given, or else the DCC Boxed test certificate whose serial KeyInfo names. Exit status:
0 done, 1 environment error, 2 application error, 3 missing key material, 10 validation failed.

    fetch_tool() -> the jar's path (fetched with npm into the user cache the first time)
    tool_sign(document, certificate, key) -> the signed document
    tool_validate(document, certificate) -> the document without its signature; a signature that
        fails raises DuisSignatureError (E100)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from host_tools.duis import assets
from host_tools.duis.errors import DuisError
from host_tools.duis.signing import DuisSignatureError

PACKAGE = assets.SCHEMA_PACKAGE
JAR_MEMBER = "package/dist/tool.jar"
JAR = "tool.jar"
SIGN_CLASS = "uk.co.smartdcc.boxed.xmldsig.Sign"
VALIDATE_CLASS = "uk.co.smartdcc.boxed.xmldsig.Validate"
RUN_TIMEOUT = 120.0
VALIDATION_FAILED = 10
_STATUS = {1: "environment error", 2: "application error", 3: "missing key material", 10: "validation failed"}


class DuisToolError(DuisError):
    """The DCC Boxed signing tool cannot be fetched or run, or refused the message (not a
    signature failure: that is DuisSignatureError)."""


def tool_dir() -> Path:
    """<user cache>/dbch/duis/<the package's folder>: where the jar is kept."""
    return assets.package_dir(PACKAGE)


def fetch_tool(progress: assets.Progress | None = assets.note) -> Path:
    """The signing tool's jar, fetched with npm (pinned version and integrity) into the user cache
    if it is not there yet, as the DUIS schema and templates are (host_tools.duis.assets);
    DuisToolError when npm cannot fetch it."""

    def extract(tar, out: Path) -> None:
        (out / JAR).write_bytes(assets._member(tar, JAR_MEMBER, PACKAGE))

    try:
        return assets._install(PACKAGE, extract, lambda folder: (folder / JAR).is_file(), progress) / JAR
    except (assets.DuisAssetsError, OSError) as e:
        raise DuisToolError("cannot fetch the DCC Boxed signing tool {}: {}".format(PACKAGE.spec, e)) from e


def java() -> str:
    """The Java runtime's `java`; DuisToolError saying what to install if there is none."""
    found = shutil.which("java")
    if found is None:
        raise DuisToolError(
            "the DCC Boxed signing tool needs a Java runtime (11 or newer) and `java` is not on PATH: "
            "install one (Debian: apt-get install default-jre-headless; scripts/setup-system does)"
        )
    return found


def _run(main_class: str, document: bytes | str, arguments: list[str]) -> tuple[int, bytes, str]:
    if isinstance(document, str):
        document = document.encode("utf-8")
    command = [java(), "-cp", str(fetch_tool()), main_class, "-"] + arguments
    try:
        done = subprocess.run(command, input=document, capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise DuisToolError("the DCC Boxed signing tool took more than {:.0f} s".format(RUN_TIMEOUT)) from e
    except OSError as e:
        raise DuisToolError("cannot run {}: {}".format(command[0], e)) from e
    said = " | ".join(line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip())
    return done.returncode, done.stdout, said


def _refused(what: str, status: int, said: str) -> DuisToolError:
    return DuisToolError(
        "the DCC Boxed signing tool could not {} (exit status {}: {}): {}".format(
            what, status, _STATUS.get(status, "unknown"), said or "no message"
        )
    )


def tool_sign(
    document: bytes | str,
    certificate: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    *,
    preserve_counter: bool = True,
) -> bytes:
    """The document signed by the DCC Boxed signing tool with the certificate (PEM file) and key
    (PKCS#8 PEM file) given, or, with neither, the DCC Boxed test key of the Request ID's
    originator. preserve_counter=False lets the tool set the counter to the time in ms."""
    if (certificate is None) != (key is None):
        raise DuisToolError("give both the certificate and the key, or neither (the tool's own test keys)")
    arguments = ["--preserveCounter"] if preserve_counter else []
    if certificate is not None:
        arguments += [str(certificate), str(key)]
    status, out, said = _run(SIGN_CLASS, document, arguments)
    if status != 0:
        raise _refused("sign the message", status, said)
    return out


def tool_validate(document: bytes | str, certificate: str | os.PathLike[str] | None = None) -> bytes:
    """The message without its signature, once the DCC Boxed signing tool has checked it against
    the DUIS schema and its signature with the certificate (PEM file) given, or the DCC Boxed
    test certificate KeyInfo names. DuisSignatureError (E100) when the signature fails or is missing;
    DuisToolError when the tool cannot check it (schema, missing certificate, no Java)."""
    arguments = [str(certificate)] if certificate is not None else []
    status, out, said = _run(VALIDATE_CLASS, document, arguments)
    # unsigned: a request is refused (exit status 10), a response passes with the check skipped
    unsigned = "signature missing" in said or "without signature" in said
    if (status == VALIDATION_FAILED and "failed signature check" in said) or unsigned:
        raise DuisSignatureError("E100 Failed Authentication: the DCC Boxed signing tool says: {}".format(said))
    if status != 0:
        raise _refused("validate the message", status, said)
    return out
