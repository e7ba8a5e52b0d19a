"""Staging a signed firmware image on a hub over the wire protocol (fw.begin, fw.chunk, fw.end),
resumable: after a link loss the agent says where to go on from, as it does for a second send.

A rollback permission (host_tools.firmware.sign.make_permit) goes with fw.begin for an image below
the hub's minimum security counter; the hub refuses the image without one (E5).
"""

from __future__ import annotations

import time

from agent import fw_image as image
from host_tools.errors import DbchError
from host_tools.firmware.images import FirmwareInputError, firmware_hash, split
from host_tools.link.client import AgentClient, AgentTimeout, LinkError


class FirmwareError(DbchError):
    """The agent refused a firmware request: rc and err are its answer."""

    def __init__(self, op: str, rc: str, err: str | None):
        super().__init__(f"{op} refused: {rc} {err or ''}".strip())
        self.rc = rc
        self.err = err


def send(
    client: AgentClient,
    data: bytes,
    *,
    chunk: int | None = None,
    progress=None,
    retries: int = 5,
    end_timeout: float = 60.0,
    permit: bytes | None = None,
) -> dict:
    """Stage a signed image on the agent (resuming where it stopped), with a rollback permission
    if given; the agent's fw.end data plus {"hash", "sent", "seconds"}. progress(done, final=False)
    is called with the bytes the agent has as they go. FirmwareError if the agent refuses it,
    LinkError if it stops answering."""
    content, sig = split(data)
    if sig is None:
        raise FirmwareInputError("the image is not signed: dbch firmware sign IMAGE --key KEY")
    digest = firmware_hash(content)
    size = len(content)
    t0 = time.monotonic()
    sent = 0
    tries = 0
    begin = {"hash": digest, "size": size, "sig": sig}
    if permit is not None:
        begin["permit"] = permit
    while True:
        try:
            r = client.request("fw.begin", begin)
            if not r.ok:
                raise FirmwareError("fw.begin", r.rc, r.err)
            if r.data.get("ready"):
                if progress:
                    progress(size, final=True)
                out = {"hash": digest, "version": image.parse_head(content)[0]["version"], "sent": 0}
                out.update({k: v for k, v in r.data.items() if k in ("slot", "running")})
                out["already"] = True
                out["seconds"] = round(time.monotonic() - t0, 3)
                return out
            off = r.data["offset"]
            step = min(chunk or r.data["chunk"], r.data["chunk"])
            while off < size:
                if progress:
                    progress(off)
                piece = content[off : off + step]
                r = client.request("fw.chunk", {"offset": off, "data": piece})
                if not r.ok:
                    if r.rc == "E49" and isinstance(r.data, dict) and "offset" in r.data:
                        off = r.data["offset"]  # the agent has another length: continue there
                        continue
                    raise FirmwareError("fw.chunk", r.rc, r.err)
                sent += len(piece)
                off = r.data["offset"]
            if progress:
                progress(size, final=True)
            r = client.request("fw.end", {}, timeout=max(end_timeout, client.timeout))
            if not r.ok:
                raise FirmwareError("fw.end", r.rc, r.err)
            out = dict(r.data)
            out.update({"hash": digest, "sent": sent, "seconds": round(time.monotonic() - t0, 3)})
            return out
        except AgentTimeout:
            tries += 1  # link loss: begin again, the agent resumes at what it has on flash
            if tries > retries:
                raise LinkError(f"the agent stopped answering after {retries} retries; send again to resume")
