"""What the IPsec tests share: two network namespaces joined by a veth pair, one private charon
in each (host_tools.security.ipsec.charon.Charon), and the reason they cannot run here, if any.

Each side has an outer address on the veth pair (IKE and ESP-in-UDP) and an inner address of its
own on `lo` (the traffic selectors), all inside namespaces made and deleted by the tests."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from host_tools.security.ipsec.charon import Charon, find_charon

EUI = "00-1B-C5-0C-00-00-12-34"
TOOL = "triage-1"
OUTER_A, OUTER_B = "10.99.0.1", "10.99.0.2"  # on the veth pair, inside our namespaces only
INNER_A, INNER_B = "10.99.1.1", "10.99.2.1"  # each side's tunnelled address (on lo)
_seq = itertools.count()


def unavailable() -> str | None:
    """Why real strongSwan cannot run here (None if it can)."""
    if sys.platform != "linux":
        return "IPsec tests need Linux"
    if os.geteuid() != 0:
        return "IPsec tests need root (network namespaces, charon)"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if find_charon() is None:
        return "strongSwan charon not installed (scripts/setup-system installs strongswan-charon)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun missing: kernel-libipsec needs a TUN device"
    try:
        import vici  # noqa: F401
    except ImportError:
        return "the vici package is missing (pip install vici)"
    probe = f"dbch-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns add` fails here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def ip(*args: str) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


@contextlib.contextmanager
def netpair() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair; deleted afterwards, whatever happened."""
    n = f"{os.getpid() % 100000}{next(_seq)}"
    a, b = f"dbch-a{n}", f"dbch-b{n}"
    made = []
    try:
        for ns in (a, b):
            ip("netns", "add", ns)
            made.append(ns)
        ip("link", "add", f"dba{n}", "netns", a, "type", "veth", "peer", "name", f"dbb{n}", "netns", b)
        for ns, dev, outer, inner in ((a, f"dba{n}", OUTER_A, INNER_A), (b, f"dbb{n}", OUTER_B, INNER_B)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{outer}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "addr", "add", f"{inner}/32", "dev", "lo")
        yield a, b
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


@contextlib.contextmanager
def charons(namespaces: tuple[str, str], workdir: Path) -> Iterator[list[Charon]]:
    """One private charon per namespace; both stopped afterwards, whatever happened."""
    started: list[Charon] = []
    try:
        for ns, side in zip(namespaces, ("a", "b")):
            started.append(Charon(workdir / f"charon-{side}", ns).start())
        yield started
    finally:
        for c in started:
            c.stop()
