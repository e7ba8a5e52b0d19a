"""A User's receiving endpoint (`dbch dcc receive`): what the DCC front POSTs to a receive URL -
Service Responses and DCC Alerts - validated against the DUIS schema, verified (the `verify`
seam), and taken once per ResponseID (host_tools.dcc.documents.key_of).

Answers as DCC Boxed's own receivers do: 204 when the document is taken (a second copy too: it is
dropped, and the sender stops sending it), 400 when it is not valid or not verified. A document
is stored (its own file, named by its key) or handed to `on_message` before its key is recorded
and before the 204, so a receiver that dies in between takes it again and stores the same file.
The keys taken are kept in `seen` (one a line, synced), so duplicates are dropped across restarts.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.dcc.documents import Facts, facts, key_of
from host_tools.dcc.httpd import Answer, Posted
from host_tools.dcc.routes import DEFAULT_RECEIVE_PATH
from host_tools.dcc.seams import Verify, accept_all
from host_tools.duis.errors import DuisError
from host_tools.duis.schema import validate
from host_tools.errors import DbchError
from host_tools.files import write_file


@dataclass
class Received:
    key: str
    facts: Facts
    xml: bytes
    peer: str
    duplicate: bool = False

    def record(self) -> dict:
        f = self.facts
        return {
            "key": self.key,
            "duplicate": self.duplicate,
            "root": f.root,
            "response_id": f.response_id,
            "request_id": f.request_id,
            "response_code": f.response_code,
            "alert_code": f.alert_code,
            "service_reference_variant": f.service_reference_variant,
            "peer": self.peer,
            "xml": self.xml.decode("utf-8", "replace"),
        }


class Receiver:
    """take(posted) -> the HTTP answer; on_message(Received) for each document taken (duplicates
    too, marked, when show_duplicates)."""

    def __init__(
        self,
        *,
        path: str = DEFAULT_RECEIVE_PATH,
        schema: Any = None,
        verify: Verify = accept_all,
        store: Path | None = None,
        seen: Path | None = None,
        on_message: Callable[[Received], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        show_duplicates: bool = False,
    ):
        self.path = path
        self.schema = schema
        self.verify = verify
        self.store = Path(store) if store else None
        self.seen_path = Path(seen) if seen else (self.store / "seen" if self.store else None)
        self.on_message = on_message or (lambda _r: None)
        self.on_refused = on_refused or (lambda _m: None)
        self.show_duplicates = show_duplicates
        self.seen: set[str] = set()
        if self.seen_path is not None and self.seen_path.exists():
            self.seen = {line.strip() for line in self.seen_path.read_text().splitlines() if line.strip()}
        self._lock = threading.Lock()
        self.taken = 0
        self.duplicates = 0
        self.refused = 0

    def _refuse(self, why: str) -> Answer:
        self.refused += 1
        self.on_refused(why)
        return Answer(400, (why + "\n").encode(), "text/plain")

    def _remember(self, key: str) -> None:
        self.seen.add(key)
        if self.seen_path is None:
            return
        self.seen_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.seen_path, "a") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())

    def take(self, posted: Posted) -> Answer:
        if posted.path.split("?", 1)[0] != self.path:
            return Answer(404, "POST to {}\n".format(self.path).encode(), "text/plain")
        if posted.content_type not in ("application/xml", "text/xml"):
            return Answer(415, b"POST DUIS XML as application/xml\n", "text/plain")
        try:
            found = facts(posted.body)
        except DuisError as e:
            return self._refuse("not XML: {}".format(e))
        errors = validate(posted.body, self.schema)
        if errors:
            return self._refuse("not valid DUIS ({} errors): {}".format(len(errors), "; ".join(errors[:3])))
        try:
            self.verify(posted.body)
        except (DbchError, ValueError) as e:
            return self._refuse("not verified: {}".format(e))
        key = key_of(posted.body, found)
        with self._lock:
            if key in self.seen:
                self.duplicates += 1
                if self.show_duplicates:
                    self.on_message(Received(key, found, posted.body, posted.peer, duplicate=True))
                return Answer(204)
            if self.store is not None:
                name = re.sub(r"[^0-9A-Za-z.-]", "_", key) + ".xml"
                write_file(self.store / name, posted.body, sync=True)
            self.on_message(Received(key, found, posted.body, posted.peer))
            self._remember(key)
            self.taken += 1
        return Answer(204)
