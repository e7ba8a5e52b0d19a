"""`dbch COMMAND` loads only COMMAND's module (host_tools.cli.COMMANDS): the table names every
command each module adds, the command word is found after the options that may come before it,
and a command line parses the same with its module alone as with every module."""

from __future__ import annotations

import argparse
import importlib

import pytest

from host_tools import cli


def test_the_table_names_what_each_module_adds():
    added = {}
    for name in cli.COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers(dest="command")
        importlib.import_module(name).register(sub)
        added.update(dict.fromkeys(sub.choices, name))
    assert cli.COMMANDS == added


@pytest.mark.parametrize(
    "argv, command",
    [
        (["flash"], "flash"),
        (["--port", "vboard:x", "--json", "flash", "--layout", "mpy"], "flash"),
        (["-p", "sim", "--baud", "9600", "--timeout", "3", "status"], "status"),
        (["--port=vboard", "--start", "config", "get"], "config"),
        (["--json"], None),
        (["--", "flash"], None),
        ([], None),
    ],
)
def test_the_command_word_is_found_after_the_options_before_it(argv, command):
    assert cli.command_of(argv) == command


@pytest.mark.parametrize(
    "argv", [["flash", "--layout", "mpy", "--port", "vboard:b"], ["--json", "config", "get"], ["firmware", "info", "x"]]
)
def test_a_command_parses_the_same_with_its_module_alone(argv):
    alone = cli.build_parser(cli.command_of(argv)).parse_args(argv)
    every = cli.build_parser().parse_args(argv)
    assert vars(alone) == vars(every)
