"""Background servers on this machine behind ptys and sockets: virtual boards, CPython agents and
Triage Tools, each in a registry of its own. Importing the package makes their --port values
(vboard, sim, triage) known to host_tools.link.ports."""

from host_tools.servers import ports as _ports  # noqa: F401  (registers the port schemes)
