"""Background servers on this machine: virtual boards (host_tools.servers.vboard), CPython agents
(host_tools.servers.simagent), each kind in a registry of its own.

A server of kind KIND called NAME keeps everything in <XDG_CACHE_HOME or ~/.cache>/dbch/KIND/NAME/.
While it lives it holds an exclusive flock on its lock file (others probe it with a shared lock:
held means alive) and has written its state file (JSON with at least "name", "port" and "pid").
A state file whose server is gone is stale and is removed by whoever reads it. ensure_running()
starts a server detached (`python -m MODULE --serve --json --name NAME --fs DIR ...`, output to the
log file) under spawn.lock, so two starters of the same name never race.

Linux only (flock, /proc).
"""

from __future__ import annotations

import argparse
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

    kind: the cache subfolder; label: what messages call one ("virtual board"); name_label: what
    the name check calls one (default: label); module: what `python -m` runs to serve one;
    from_json: the info class's constructor from its state file; error: the exception raised.
    Infos have .name, .port, .pid and .to_json().
    """

    def __init__(
        self,
        kind: str,
        label: str,
        *,
        module: str,
        state_file: str,
        lock_file: str,
        log_file: str,
        from_json: Callable[[dict], Any],
        error: type[Exception],
        name_label: str | None = None,
    ):
        self.kind = kind
        self.label = label
        self.name_label = name_label or label
        self.module = module
        self.state_file = state_file
        self.lock_file = lock_file
        self.log_file = log_file
        self.from_json = from_json
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

    def server_dir(self, name: str) -> Path:
        return self.cache_root() / self.check_name(name)

    def default_fs(self, name: str) -> Path:
        return self.server_dir(name) / "flash"

    def fs_path(self, name: str, fs: str | Path | None) -> Path:
        """`fs` made absolute, or the default directory of `name` if it is None."""
        return Path(fs).expanduser().resolve() if fs is not None else self.default_fs(name)

    def state_path(self, name: str) -> Path:
        return self.server_dir(name) / self.state_file

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
            return self.from_json(json.loads(self.state_path(name).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read_state(self, name: str) -> Any | None:
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

    def not_running(self, name: str, command: str) -> str:
        """The message for a `name` that is not running: which ones are, and how to start it
        (command: the `dbch` command that starts one, e.g. "dbch vboard")."""
        running = ", ".join(info.name for info in self.list_running()) or "none"
        return (
            f"{self.label} {name!r} is not running; running: {running} "
            f"(start one: {command} --name {name}, or add --start)"
        )

    def write_state(self, info) -> None:
        path = self.state_path(info.name)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info.to_json(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def remove_state(self, name: str, pid: int) -> None:
        """Remove the state file of `name` if it is the one process `pid` wrote."""
        info = self.load_state(name)
        if info is not None and info.pid == pid:
            with contextlib.suppress(OSError):
                self.state_path(name).unlink()

    # -- starting and stopping

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
                    raise self.error(f"{self.label} {name!r} is starting but did not come up; see {d / self.log_file}")
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
        log = d / self.log_file
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

    def stop(self, name: str, timeout: float = 5.0) -> bool:
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

    # -- command line

    def run_query(self, args: argparse.Namespace, describe: Callable[[Any], str], none_running: str) -> int | None:
        """The --stop, --list and --status actions of `dbch KIND`: their exit status, or None
        if `args` asks for none of them. describe(info) is the text line of one server."""
        from host_tools.cli import emit

        if args.stop:
            was = self.stop(args.name)
            emit(
                args,
                {"name": args.name, "stopped": was},
                f"stopped {args.name}" if was else f"{args.name} was not running",
            )
            return 0
        if args.list:
            found = self.list_running()
            emit(args, [i.to_json() for i in found], "\n".join(describe(i) for i in found) or none_running)
            return 0
        if args.status:
            info = self.read_state(args.name)
            if info is None:
                emit(args, {"name": args.name, "running": False}, f"{args.name} is not running")
                return 3
            emit(args, info.to_json(), describe(info))
            return 0
        return None


def module_main(
    prog: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run_command: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """`python -m MODULE ...` of a server kind: the options of its `dbch` command, errors printed
    as `dbch` prints them (this is what ensure_running starts with --serve)."""
    from host_tools.cli import CommandError, add_json_flag

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    add_json_flag(parser)
    parser.set_defaults(json=False)
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except CommandError as e:
        print(f"dbch: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
