"""dbch where the virtual board cannot run: on Windows there is no fcntl, termios, tty or pty.
The commands behind ptys say so in one line; the others work. (Run here by hiding those modules
from a fresh interpreter.)"""

from __future__ import annotations

import re
import subprocess
import sys

WITHOUT_POSIX = """
import sys
for m in ("fcntl", "termios", "tty", "pty"):
    sys.modules[m] = None
from host_tools import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _dbch(tmp_path, *argv):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX, *argv], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
    )


def test_pty_commands_say_what_they_need(tmp_path):
    for argv, command in ((["vboard", "--list"], "vboard"), (["agent"], "agent"), (["triage", "serve"], "triage")):
        r = _dbch(tmp_path, *argv)
        assert r.returncode == 1, r.stderr
        line = r.stderr.strip()
        assert re.fullmatch(
            rf"dbch: `dbch {command}` needs a POSIX system \(Linux or macOS\): this Python has no \w+", line
        )


def test_the_other_commands_work(tmp_path):
    assert _dbch(tmp_path, "--help").returncode == 0
    r = _dbch(tmp_path, "pki", "init", "--json")
    assert r.returncode == 0, r.stderr
    r = _dbch(tmp_path, "firmware", "build", "--out", str(tmp_path / "fw.img"), "--json")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fw.img").stat().st_size > 10_000
