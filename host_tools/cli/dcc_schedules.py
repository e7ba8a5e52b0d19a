"""`dbch dcc schedules`: the DCC Schedules created through this project's DCC front (SRV 5.1
CreateSchedule, host_tools.duis.dsp), each with its next run dates (host_tools.duis.schedule:
the seed's frequencies, with the month-end rule); --add answers a CreateSchedule request file
as the DCC does (validated, stored, I0 with its DSPScheduleID, or the error) first."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from host_tools.cli.output import CommandError, add_json_flag, emit
from host_tools.duis.dsp import ScheduleStore, default_path, schedule_of
from host_tools.duis.errors import DuisError
from host_tools.duis.times import utc_text

DESCRIPTION = (
    __doc__
    + """
Run dates are UTC ("YYYY-MM-DDThh:mm:ssZ"): the schedule's dates at its
ScheduleExecutionStartTime (default 00:01:00). The store is a JSON file (default: {})."""
)


def register(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "schedules",
        help="list the DCC Schedules (CreateSchedule) and their next run dates; --add answers a request file",
        description=DESCRIPTION.format(default_path()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--add", metavar="REQUEST.xml", help="a CreateSchedule request (SRV 5.1, CV 8) to answer first")
    p.add_argument("--runs", type=int, default=5, help="run dates shown per schedule (default 5)")
    p.add_argument("--after", help="show the runs after this UTC time (default: now)")
    p.add_argument("--store", help="the schedule store file (default: %(default)s)", default=str(default_path()))
    p.add_argument("--schema", help="folder of the DUIS schema (default: $DBCH_DUIS_SCHEMA_DIR)")
    add_json_flag(p)
    p.set_defaults(func=cmd_schedules)


def cmd_schedules(args: argparse.Namespace) -> int:
    if not 0 <= args.runs <= 1000:
        raise CommandError("--runs is 0 to 1000")
    try:
        after = (
            utc_text(args.after) if args.after else utc_text(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        )
    except DuisError as e:
        raise CommandError(f"--after: {e}") from e
    store = ScheduleStore(args.store)
    result: dict = {"store": str(store.path), "after": after}
    rc = 0
    if args.add:
        from host_tools.duis.front import serve_non_device

        try:
            xml = Path(args.add).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {args.add}: {e}") from e
        ex = serve_non_device(xml, store, schema=args.schema)
        result["added"] = {"rc": ex.code, "warnings": ex.warnings, "xml": ex.sync.decode()}
        rc = 0 if ex.code.startswith("I") else 1
        if not args.json:
            sys.stdout.write(ex.sync.decode())
            print(ex.warnings[-1], file=sys.stderr)
    rows = []
    for entry in store.schedules():
        runs = schedule_of(entry).runs(args.runs, after=after)
        rows.append({**entry, "runs": runs})
    result["schedules"] = rows
    lines = [f"{len(rows)} DCC Schedule(s) in {store.path}; runs after {after}:"]
    for r in rows:
        end = f" to {r['end_date']}" if r.get("end_date") else ""
        lines.append(
            f"  #{r['id']} {r['frequency']} from {r['start_date']}{end} at {r['execution_time']} UTC: "
            f"{r['service_reference_variant']} for {r['device']}"
        )
        lines.extend(f"      {t}" for t in r["runs"]) if r["runs"] else lines.append("      (no more runs)")
    emit(args, result, "\n".join(lines))
    return rc
