"""Background servers on this machine behind ptys and sockets: virtual boards, CPython agents and
Triage Tools, each in a registry of its own."""
