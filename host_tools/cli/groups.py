"""A command made of actions, `dbch GROUP ACTION ...`: its parser and the one for each action."""

from __future__ import annotations

import argparse


def add_group(subparsers, name: str, help: str, description: str | None, dest: str | None = None):
    """The parser of `dbch NAME` (its --help shows `description` as written) and the subparsers
    its actions are added to (`dest` holds the action, NAME_command unless given); `dbch NAME`
    without an action prints its help and exits with 2."""
    top = subparsers.add_parser(
        name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])
    return top.add_subparsers(dest=dest or f"{name}_command", metavar="ACTION")
