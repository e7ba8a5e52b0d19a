"""host_tools.files: a file is written whole, with the mode asked for, and leaves nothing behind."""

from __future__ import annotations

import os
import stat

import pytest

from host_tools.files import write_file, write_json


def test_write_file_replaces_whole_and_makes_the_directory(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    write_file(path, b"old")
    write_file(path, b"new", sync=True)
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["x.bin"]


def test_a_secret_is_mode_0600(tmp_path):
    path = tmp_path / "key.pem"
    write_file(path, b"public")
    write_file(path, b"secret", secret=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"secret"


def test_json_is_sorted_with_a_final_newline(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"b": 1, "a": [None]})
    assert path.read_text() == '{\n  "a": [\n    null\n  ],\n  "b": 1\n}\n'
    write_json(path, [3, 1], indent=None)
    assert path.read_text() == "[3, 1]\n"


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    taken = tmp_path / "taken"
    (taken / "inside").mkdir(parents=True)  # the name is a directory: the rename fails
    with pytest.raises(OSError):
        write_json(taken, {"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["taken"]
