"""`dbch dcc ACTION`: the DCC's side toward this project's hubs. Each module in ACTION_MODULES
adds its own actions to the group (`register(actions)`)."""

from __future__ import annotations

import argparse
import importlib

from host_tools.cli.groups import add_group

ACTION_MODULES: tuple[str, ...] = ("host_tools.cli.dcc_schedules",)


def register(sub: argparse._SubParsersAction) -> None:
    actions = add_group(sub, "dcc", "the DCC's side: DCC Schedules (CreateSchedule, SRV 5.1)", __doc__)
    for name in ACTION_MODULES:
        importlib.import_module(name).register(actions)
