"""Background servers on this machine: virtual boards (host_tools.servers.vboard), CPython agents
(host_tools.servers.simagent), Triage Tools, each kind in a registry of its own.

A server of kind KIND called NAME keeps everything in <XDG_CACHE_HOME or ~/.cache>/dbch/KIND/NAME/.
While it lives it holds an exclusive flock on its lock file (others probe it with a shared lock:
held means alive) and has written its state file: its record (host_tools.servers.records), JSON
with at least "name", "port" and "pid". A state file whose server is gone is stale and is removed
by whoever reads it. ensure_running() starts a server detached (`python -m MODULE --serve --json
--name NAME --fs DIR ...`, MODULE being its `dbch` command alone, output to the log file) under
spawn.lock, so two starters of the same name never race. `--port PREFIX[:NAME]` values name a server: resolve_port() finds (or starts) it.

Linux only (flock, /proc).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_tools.files import write_json
from host_tools.paths import cache_dir

DEFAULT_NAME = "default"
SPAWN_LOCK_FILE = "spawn.lock"

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def try_lock(path: Path, kind: int) -> int | None:
    """An fd holding flock(kind) on path, or None if someone else holds a conflicting lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def log_tail(path: Path, since: int = 0, n: int = 1500) -> str:
    """The last n bytes of what `path` got after offset `since`, as text ("" if unreadable)."""
    try:
        return path.read_bytes()[since:][-n:].decode(errors="replace").strip()
    except OSError:
        return ""


class ServiceRegistry:
    """The servers of one kind: where they live, which ones run, starting and stopping them.

    kind: the cache subfolder, also the stem of its state (KIND.json), lock and log files;
    label: what messages call one ("virtual board"); name_label: what the name check calls one
    (default: label); command: the `dbch` command of one ("vboard"); module: what `python -m`
    runs to serve one in the background (that command alone, e.g. "host_tools.cli.vboard",
    which starts quicker than all of dbch); port_prefix: the --port value that names one
    ("vboard" for vboard[:NAME]); info: the record class (a host_tools.servers.records.ServerInfo
    with .name, .port, .pid); error: the DbchError kind raised.
    """

    def __init__(
        self,
        kind: str,
        label: str,
        *,
        error: type[Exception],
        info: type,
        command: str | None = None,
        port_prefix: str | None = None,
        name_label: str | None = None,
        module: str | None = None,
    ):
        self.kind = kind
        self.label = label
        self.name_label = name_label or label
        self.command = command
        self.module = module
        self.port_prefix = port_prefix
        self.state_file = kind + ".json"
        self.lock_file = kind + ".lock"
        self.log_file = kind + ".log"
        self.info = info
        self.error = error

    # -- where things live

    def cache_root(self) -> Path:
        return cache_dir(self.kind)

    def check_name(self, name: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise self.error(
                f"invalid {self.name_label} name {name!r}: use letters, digits, '_', '.', '-' (not starting with '.' or '-')"
            )
        return name

    def server_dir(self, name: str = DEFAULT_NAME) -> Path:
        return self.cache_root() / self.check_name(name)

    def default_fs(self, name: str = DEFAULT_NAME) -> Path:
        return self.server_dir(name) / "flash"

    def fs_path(self, name: str, fs: str | Path | None) -> Path:
        """`fs` made absolute, or the default directory of `name` if it is None."""
        return Path(fs).expanduser().resolve() if fs is not None else self.default_fs(name)

    def state_path(self, name: str = DEFAULT_NAME) -> Path:
        return self.server_dir(name) / self.state_file

    def log_path(self, name: str = DEFAULT_NAME) -> Path:
        return self.server_dir(name) / self.log_file

    # -- state and liveness

    def alive(self, name: str) -> bool:
        """True while a server for `name` holds its lifetime lock."""
        path = self.server_dir(name) / self.lock_file
        if not path.exists():
            return False
        fd = try_lock(path, fcntl.LOCK_SH)
        if fd is None:
            return True
        os.close(fd)
        return False

    def load_state(self, name: str) -> Any | None:
        """What the state file of `name` says, alive or not (None if missing or unreadable)."""
        try:
            return self.info.from_json(json.loads(self.state_path(name).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read_state(self, name: str = DEFAULT_NAME) -> Any | None:
        """The running server called `name`, or None (a stale state file is removed)."""
        info = self.load_state(name)
        if info is None:
            return None
        if self.alive(name) and pid_alive(info.pid) and os.path.exists(info.port):
            return info
        if not self.alive(name):
            with contextlib.suppress(OSError):
                self.state_path(name).unlink()
        return None

    def list_running(self) -> list:
        """Every running server of this kind, by name."""
        root = self.cache_root()
        if not root.is_dir():
            return []
        found = []
        for d in sorted(root.iterdir()):
            if d.is_dir() and _NAME_RE.match(d.name):
                info = self.read_state(d.name)
                if info:
                    found.append(info)
        return found

    def running_names(self) -> str:
        """The names of the running servers of this kind, for a message ("none" if none runs)."""
        return ", ".join(info.name for info in self.list_running()) or "none"

    # -- --port values

    def port_name(self, spec: str) -> str | None:
        """The name in a --port value PREFIX:NAME ("" for a bare PREFIX), None if `spec` is
        not one of this kind."""
        prefix = self.port_prefix
        if prefix and (spec == prefix or spec.startswith(prefix + ":")):
            return spec[len(prefix) + 1 :]
        return None

    def resolve_port(self, spec: str, start: bool | None, ensure_running: Callable[[str], Any]) -> str:
        """The pty path of a --port value of this kind (port_name is not None).

        start: True starts the server if it is not running (ensure_running(name)), False never
        does, None (the default) starts only the default one (the bare prefix): a named one that
        is not running is an error that lists the running ones, so a typo starts nothing.
        """
        given = self.port_name(spec)
        name = self.check_name(given or DEFAULT_NAME)
        info = self.read_state(name)
        if info is not None:
            return info.port
        if start or (start is None and not given):
            return ensure_running(name).port
        raise self.error(
            f"{self.label} {name!r} is not running; running: {self.running_names()} "
            f"(start one: dbch {self.command} --name {name}, or add --start)"
        )

    def write_state(self, info) -> None:
        write_json(self.state_path(info.name), info.to_json())

    def remove_state(self, name: str, pid: int) -> None:
        """Remove the state file of `name` if it is the one process `pid` wrote."""
        info = self.load_state(name)
        if info is not None and info.pid == pid:
            with contextlib.suppress(OSError):
                self.state_path(name).unlink()

    # -- starting and stopping

    def differs(self, info, what: str, hint: bool = True) -> Exception:
        """The error for the running server `info` when it is not what was asked for: it is
        running `what` ("on DIR, not OTHER"); hint: say how to stop it."""
        how = f" (dbch {self.command} --stop --name {info.name})" if hint else ""
        return self.error(f"{self.label} {info.name!r} is running {what}: stop it first{how}")

    def check_fs(self, info, fs: str | Path | None) -> None:
        """Raise differs() if the running server `info` is not on the directory `fs` (None: any)."""
        if fs is not None and Path(fs).expanduser().resolve() != Path(info.fs).expanduser().resolve():
            raise self.differs(info, f"on {info.fs}, not {fs}")

    def ensure_running(
        self, name: str, fs: str | Path | None, args: list[str], check: Callable[[Any], None], timeout: float
    ) -> Any:
        """The live server `name`, started in the background (detached) if none runs.

        A live one is passed to check(info), which raises if it does not fit what was asked for.
        A new one runs `python -m MODULE --serve --json --name NAME --fs DIR` followed by `args`.
        """
        d = self.server_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        lock_fd = None
        while lock_fd is None:  # one starter at a time per name
            lock_fd = try_lock(d / SPAWN_LOCK_FILE, fcntl.LOCK_EX)
            if lock_fd is None:
                if time.monotonic() > deadline:
                    raise self.error(f"timed out waiting for another start of {self.label} {name!r}")
                time.sleep(0.05)
        try:
            while True:
                info = self.read_state(name)
                if info is not None:
                    check(info)
                    return info
                if not self.alive(name):
                    break
                if time.monotonic() > deadline:  # a server is up but never wrote its state
                    raise self.error(
                        f"{self.label} {name!r} is starting but did not come up; see {self.log_path(name)}"
                    )
                time.sleep(0.05)
            return self._spawn_detached(name, fs, args, deadline)
        finally:
            os.close(lock_fd)

    def _spawn_detached(self, name: str, fs, args: list[str], deadline: float) -> Any:
        d = self.server_dir(name)
        argv = [sys.executable, "-m", self.module, "--serve", "--json", "--name", name]
        argv += ["--fs", str(self.fs_path(name, fs))] + list(args)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log = self.log_path(name)
        with open(log, "ab") as out:
            since = out.tell()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=str(d),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        while time.monotonic() < deadline:
            info = self.load_state(name)
            if info is not None and info.pid == proc.pid:
                return info
            if proc.poll() is not None:
                raise self.error(f"{self.label} {name!r} did not start: {log_tail(log, since) or 'no output'}")
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            proc.terminate()
        raise self.error(f"{self.label} {name!r} did not come up in time; see {log}")

    def stop(self, name: str = DEFAULT_NAME, timeout: float = 5.0) -> bool:
        """End the server `name`; True if one was running. Its state file is gone when this returns."""
        self.check_name(name)
        info = self.load_state(name)
        if not self.alive(name):
            with contextlib.suppress(OSError):
                self.state_path(name).unlink()
            return False
        if info is None:
            raise self.error(f"{self.label} {name!r} is running but has no state file yet; try again")
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive(name) or pid_alive(info.pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
                time.sleep(0.1)
                break
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.state_path(name).unlink()
        return True

    # -- serving

    def serve(
        self,
        name: str,
        make_server: Callable[[], Any],
        make_info: Callable[[Any], Any],
        on_ready: Callable[[Any], None] | None = None,
        signals: dict | None = None,
    ) -> None:
        """Serve `name` in this process while holding its lifetime lock.

        make_server() builds the server (open(), run(), request_stop(), close()); once it is open,
        make_info(server) is recorded as the state and passed to on_ready. It runs until
        SIGTERM/SIGINT/SIGHUP; `signals` maps more signals to a function called with the server.
        The state file is removed and the lock released when it ends.
        """
        d = self.server_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        life_fd = None
        deadline = time.monotonic() + 1.0
        while life_fd is None:  # a passing liveness probe may hold the lock shared for a moment
            life_fd = try_lock(d / self.lock_file, fcntl.LOCK_EX)
            if life_fd is None:
                if time.monotonic() > deadline:
                    running = self.load_state(name)
                    where = f" on {running.port}" if running else ""
                    raise self.error(f"{self.label} {name!r} is already running{where}")
                time.sleep(0.02)
        server = None
        previous: dict = {}
        try:
            server = make_server()
            server.open()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                previous[sig] = signal.signal(sig, lambda *_: server.request_stop())
            for sig, fn in (signals or {}).items():
                previous[sig] = signal.signal(sig, lambda *_, fn=fn: fn(server))
            info = make_info(server)
            self.write_state(info)
            if on_ready:
                on_ready(info)
            server.run()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if server is not None:
                server.close()
            self.remove_state(name, os.getpid())
            os.close(life_fd)
