"""Who has a board's serial line: the agent (the wire protocol) or MicroPython's REPL (mpremote).

hand_over asks a running agent to give the line to the REPL, take_back starts the agent again
whatever mpremote left the board at, and wait_for_hello waits for the agent after a flash or a
reboot.
"""

from __future__ import annotations

import time

from host_tools.link.client import AgentClient, AgentTimeout, LinkError
from host_tools.link.ports import PortBusy, SerialTransport


def hand_over(port: str, *, baud: int = 115200, timeout: float = 1.0) -> bool:
    """Ask the agent on `port` to give the line to the REPL (the "repl" request), before mpremote
    takes it. True once the agent answered I0 and left its loop. False if it did not: an agent that
    does not know the request (an older one, E13) or no agent at all (a board at its REPL); then
    mpremote's own Ctrl-C is what stops an older agent, which still has Ctrl-C on. A running agent
    that knows the request ignores Ctrl-C (the interrupt character is off while it owns the line),
    so this request is the only way in short of a reset. PortBusy if another program has the port
    open."""
    try:
        transport = SerialTransport(port, baud)
    except PortBusy:
        raise
    except LinkError:
        return False
    text = bytearray()
    try:
        # a board at its REPL shows a prompt, or echoes what it is sent (the request's op name
        # comes back as text, which an agent never sends): no agent there
        r = AgentClient(transport, timeout=timeout, port=port, on_text=text.extend).request(
            "repl", give_up=lambda: b">>> " in text or b"repl" in text
        )
        if r.ok:
            _until_prompt(transport)
    except LinkError:
        return False
    finally:
        transport.close()
    return r.ok


def _until_prompt(transport, wait: float = 0.5) -> None:
    # main.py returns and the REPL prints its prompt: mpremote's Ctrl-C must not come before it
    seen = b""
    deadline = time.monotonic() + wait
    while not seen.endswith(b">>> ") and time.monotonic() < deadline:
        seen = (seen + transport.read(256))[-16:]


def take_back(port: str, *, baud: int = 115200, timeout: float = 20.0) -> dict:
    """Start the agent again after a hand-over, whatever mpremote left the board at: Ctrl-B leaves
    the raw REPL (at the friendly REPL it only reprints the banner), then Ctrl-D soft-resets from
    the friendly REPL, so main.py runs. The agent's hello."""
    transport = SerialTransport(port, baud)
    try:
        transport.write(b"\r\x02")
        time.sleep(0.1)
        transport.write(b"\x04")
        time.sleep(0.05)
    finally:
        transport.close()
    return wait_for_hello(port, baud=baud, timeout=timeout)


def wait_for_hello(port: str, *, baud: int = 115200, timeout: float = 20.0) -> dict:
    """The agent's hello on `port` once it is up (after a flash or a reboot). LinkError if it
    does not come: with what the board printed meanwhile (console.explain_silence), or at once
    (PortBusy) if another program has the port open."""
    from host_tools.link.console import explain_silence

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    tries = 0
    while time.monotonic() < deadline:
        try:
            transport = SerialTransport(port, baud)
        except PortBusy:
            raise
        except LinkError as e:
            last = e
            time.sleep(0.2)
            continue
        try:
            client = AgentClient(transport, timeout=1.0, port=port)
            while time.monotonic() < deadline:
                # asked again and again, the first times soon: a hello sent while the board was
                # still starting is never answered, and the agent is usually up within 0.1 s
                wait = min(1.0, 0.1 * 2**tries, max(0.05, deadline - time.monotonic()))
                tries += 1
                try:
                    r = client.hello(timeout=wait)
                except AgentTimeout as e:
                    last = e
                    continue
                if r.ok:
                    return r.data
        except LinkError as e:
            last = e
        finally:
            transport.close()
    why = explain_silence(port, baud=baud)
    raise LinkError(
        f"the agent did not answer on {port} within {timeout:g} s after flashing or rebooting ({last})"
        + (f"\n{why}" if why else "")
    )
