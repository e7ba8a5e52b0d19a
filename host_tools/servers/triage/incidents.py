"""The Triage Tool's incident recorder (agent.incidents.Incidents) kept in incidents.json beside its
state file, so that an open Major Security Incident and its counts survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

from host_tools.files import write_json
from host_tools.servers.triage.registry import TriageToolError

INCIDENTS_FILE = "incidents.json"


class IncidentRecord:
    """The file that keeps an Incidents recorder across restarts (path None: not kept)."""

    def __init__(self, path: Path | None):
        self.path = path

    def restore(self, incidents) -> bool:
        """Put the recorder as it was when the tool last stopped; True if there was a record."""
        path = self.path
        if path is None or not path.exists():
            return False
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("totals", {}), dict):
                raise ValueError("not an incident record")
            incidents.restore(data)
        except (OSError, ValueError, TypeError) as e:
            raise TriageToolError(
                f"the incident record {path} cannot be read ({e}): it holds the open incidents and their "
                "counts, so the tool does not start without it; repair it, or move it aside to start afresh"
            ) from e
        return True

    def keep(self, incidents) -> None:
        """Write the recorder atomically (a new file, synced, renamed over the old); OSError if
        it cannot be written."""
        if self.path is not None:
            write_json(self.path, incidents.snapshot(), sync=True)
