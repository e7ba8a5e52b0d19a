import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ("pytester",)  # for the tests of the dbch pytest plugin
# tests/upy holds MicroPython's own unittest shim: never let CPython import it.
collect_ignore = ["upy"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- the DUIS schema and DCC templates -----------------------------------------------------------
# Read where they are: $DBCH_DUIS_SCHEMA_DIR (and $DBCH_DUIS_TEMPLATES_DIR), else the copies
# host_tools.duis.assets fetches with npm into the user's cache. A test that needs them fails,
# never skips, when they cannot be had. The cache is the user's as it was when the run began:
# tests that point XDG_CACHE_HOME elsewhere for their own state do not fetch again.
import os  # noqa: E402

import pytest  # noqa: E402

_USER_CACHE = os.environ.get("XDG_CACHE_HOME")


def _in_user_cache(fetch):
    with pytest.MonkeyPatch.context() as mp:
        if _USER_CACHE is None:
            mp.delenv("XDG_CACHE_HOME", raising=False)
        else:
            mp.setenv("XDG_CACHE_HOME", _USER_CACHE)
        return fetch()


@pytest.fixture(scope="session")
def duis_schema_dir() -> Path:
    """The DUIS schema folder: $DBCH_DUIS_SCHEMA_DIR if set, else the copy fetched from npm."""
    from host_tools.duis import assets as duis_assets
    from host_tools.duis.errors import DuisError
    from host_tools.duis.schema import ENV_SCHEMA_DIR, schema_dir

    env = os.environ.get(ENV_SCHEMA_DIR)
    try:
        if env:
            return schema_dir(env)
        return _in_user_cache(duis_assets.fetch_schema).resolve()
    except (DuisError, duis_assets.DuisAssetsError) as e:
        pytest.fail("no DUIS schema for the tests: {}".format(e), pytrace=False)


@pytest.fixture(scope="session")
def duis_templates_dir() -> Path:
    """The DCC Boxed templates folder: $DBCH_DUIS_TEMPLATES_DIR if set, else
    $DBCH_DUIS_SCHEMA_DIR/templates if that exists, else the copy fetched from npm."""
    from host_tools.duis import assets as duis_assets
    from host_tools.duis.schema import ENV_SCHEMA_DIR

    if os.environ.get("DBCH_DUIS_TEMPLATES_DIR"):
        folder = Path(os.environ["DBCH_DUIS_TEMPLATES_DIR"])
    elif os.environ.get(ENV_SCHEMA_DIR) and (Path(os.environ[ENV_SCHEMA_DIR]) / "templates").is_dir():
        folder = Path(os.environ[ENV_SCHEMA_DIR]) / "templates"
    else:
        try:
            folder = _in_user_cache(duis_assets.templates_dir)
        except duis_assets.DuisAssetsError as e:
            pytest.fail("no DCC templates for the tests: {}".format(e), pytrace=False)
    if not any(folder.glob("*.XML")):
        pytest.fail("no DCC templates (*.XML) in {}".format(folder), pytrace=False)
    return folder.resolve()


@pytest.fixture(scope="session")
def duis_sign_tool() -> Path:
    """The DCC Boxed signing tool's jar (fetched from npm into the user's cache, as the schema is)
    with a Java runtime to run it; the test fails, saying what to install, without either."""
    from host_tools.duis import assets as duis_assets
    from host_tools.duis import signtool

    try:
        signtool.java()
        return _in_user_cache(signtool.fetch_tool)
    except (signtool.DuisToolError, duis_assets.DuisAssetsError) as e:
        pytest.fail("no DCC Boxed signing tool for the tests: {}".format(e), pytrace=False)
