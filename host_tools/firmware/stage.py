"""Staging a signed firmware image on a hub over the wire protocol (fw.begin, fw.chunk, fw.end),
resumable: after a link loss the agent says where to go on from, as it does for a second send.

A rollback permission (host_tools.firmware.sign.make_permit) goes with fw.begin for an image below
the hub's minimum security counter; the hub refuses the image without one (E5).

Compressed (the default): fw.begin offers a raw deflate stream ("z": the largest window, log2
bytes); a hub that takes it answers with the window it affords, the most compressed bytes a
chunk may carry and the most it may decompress to ("z", "zc", "zn"), and the rest of the image
goes as one stream compressed with zlib for that window, cut into chunks of that size, each saying
how many image bytes it completes (stream_chunks), so the hub decompresses each on arrival
(agent/fw_inflate.py). A hub without deflate (or one that predates it) answers without "z" and
gets plain chunks. An update against the image the hub runs (base: fw.begin's "zd" names it by
FirmwareHash): each module it shares with the new image starts a new piece of the stream, and the
hub puts its own copy of that module in the window first (stream_chunks). After a link loss,
fw.begin again: a new stream starts at the offset the hub has staged. A compressed chunk the hub
refuses (it did not decompress whole: damaged, or no memory for it then) is staged not at all,
and the rest goes in plain chunks.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from agent import fw_image as image
from host_tools.errors import DbchError
from host_tools.firmware.images import FirmwareInputError, firmware_hash, split
from host_tools.link.client import AgentClient, AgentTimeout, LinkError

WBITS = 15  # the largest deflate window offered (32 KB); the hub may take less
LEVEL = 9


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
    compress: bool = True,
    wbits: int = WBITS,
    base: bytes | Callable[[bytes], bytes | None] | None = None,
) -> dict:
    """Stage a signed image on the agent (resuming where it stopped), with a rollback permission
    if given, compressed if compress and the agent takes it (window at most 2**wbits); the
    agent's fw.end data plus {"hash", "sent", "seconds", "stream", "wbits"} (sent: image bytes
    staged by this call; stream: the bytes that carried them, compressed or not; wbits: the
    window, None for plain chunks; "against": True when the stream referred to base, the image
    the hub runs (its FirmwareHash is fw.begin's zd; a chunk then names the file of it to put in
    the window first: stream_chunks), given as the image or as a lookup by FirmwareHash
    (images.kept_image); "fallback": why the rest went in plain chunks, when the hub
    refused a compressed chunk). progress(done, final=False) is called with the bytes the
    agent has as they go. FirmwareError if the agent refuses it, LinkError if it stops answering."""
    if compress and not 9 <= wbits <= 15:
        raise ValueError(f"wbits must be 9 to 15, not {wbits}")
    content, sig = split(data)
    if sig is None:
        raise FirmwareInputError("the image is not signed: dbch firmware sign IMAGE --key KEY")
    digest = firmware_hash(content)
    size = len(content)
    t0 = time.monotonic()
    tally = {"sent": 0, "stream": 0}  # image bytes staged by this call, and the bytes that carried them
    tries = 0
    restarts = 0
    window = None
    fallback = None  # why the rest went in plain chunks, if a compressed chunk was refused
    against = False
    begin = {"hash": digest, "size": size, "sig": sig}
    if permit is not None:
        begin["permit"] = permit
    if compress:
        begin["z"] = wbits
    while True:
        if fallback is not None:
            begin.pop("z", None)
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
            if "z" in begin and r.data.get("z"):
                window = r.data["z"]
                zstep = min(chunk or r.data["zc"], r.data["zc"])
                have = _base_files(base, r.data.get("zd"))  # the files of the image the hub runs
                against = have is not None
                try:
                    why = _send_stream(
                        client, content, off, zstep, window, r.data["zn"], progress, tally, have, r.data.get("zw", 1)
                    )
                except FirmwareError as e:
                    if e.rc != "E49":
                        raise
                    # a chunk the hub could not decompress whole (damaged, or no memory for it
                    # then): nothing of it was staged; the rest goes in plain chunks, once
                    fallback = e.err or "compressed chunk refused"
                    continue
                if why is not None:  # the hub has another length, or lost the stream
                    restarts += 1
                    if restarts > retries:
                        raise FirmwareError("fw.chunk", "E49", f"the stream was restarted {retries} times: {why}")
                    continue
                off = size
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
                tally["sent"] += len(piece)
                tally["stream"] += len(piece)
                off = r.data["offset"]
            if progress:
                progress(size, final=True)
            r = client.request("fw.end", {}, timeout=max(end_timeout, client.timeout))
            if not r.ok:
                raise FirmwareError("fw.end", r.rc, r.err)
            out = dict(r.data)
            out.update({"hash": digest, "seconds": round(time.monotonic() - t0, 3), "wbits": window})
            if fallback is not None:
                out["fallback"] = fallback
            if against:
                out["against"] = True
            out.update(tally)
            return out
        except AgentTimeout:
            tries += 1  # link loss: begin again, the agent resumes at what it has on flash
            if tries > retries:
                raise LinkError(f"the agent stopped answering after {retries} retries; send again to resume")


def _base_files(base, running) -> dict[str, bytes] | None:
    """{path: data} of base (an image, or a lookup by FirmwareHash) when it is the image whose
    FirmwareHash is running (fw.begin's zd), else None."""
    if base is None or not isinstance(running, bytes):
        return None
    data = base(running) if callable(base) else base
    if data is None:
        return None
    content = split(data)[0]
    if firmware_hash(content) != running:
        return None
    try:
        return {path: d for _at, path, d in records(content)}
    except (IndexError, ValueError):  # records that are not an image's: no base
        return None


def records(content: bytes) -> list[tuple[int, str, bytes]]:
    """(offset of the record, path, data) of each file record of an image's CONTENT, in order."""
    m, _n = image.parse_head(content)
    pos = len(content) - m["size"]
    out = []
    while content[pos]:
        plen = content[pos]
        path = content[pos + 1 : pos + 1 + plen].decode()
        dlen = int.from_bytes(content[pos + 1 + plen : pos + 5 + plen], "big")
        start = pos + 5 + plen
        out.append((pos, path, content[start : start + dlen]))
        pos = start + dlen
    return out


def stored_block(data: bytes) -> bytes:
    """data as one stored (uncompressed) deflate block, not the last: what the hub makes of the
    bytes it puts in the window (agent.fw_inflate, Inflater.prime)."""
    k = len(data)
    return bytes((0, k & 255, k >> 8, ~k & 255, (~k >> 8) & 255)) + data


def stream_chunks(content: bytes, off: int, wbits: int, step: int, most: int, base: dict[str, bytes] | None = None):
    """content from off to its end as one raw deflate stream (window 2**wbits), cut into pieces of
    at most step compressed bytes: (offset, compressed bytes, the image bytes they complete, path
    of the running image to put in the window first or None).

    Each piece's image bytes are what a decoder that has read the stream up to the piece's end can
    give: every symbol whose bits are in by then (zlib's decompressor, fed the same pieces, says
    which); a symbol whose bits straddle the cut is given by the next piece. A decoder asked for
    exactly those bytes reads no further, so the hub decompresses each piece as it arrives. A
    piece that would give more than most bytes is cut shorter.

    base: {path: data} of the image the hub runs (fw.begin's zd). Each record of a file it also
    has then starts a new piece of the stream, whose first chunk names the file: the hub puts the
    last 2**wbits bytes of its own copy in the window first, and the stream refers back to them
    (that piece is compressed with the window's bytes as its dictionary; the one before it ends at
    a byte, Z_SYNC_FLUSH). Without base the stream is compressed whole, never flushed."""
    window = 1 << wbits
    cuts = [(off, None)]  # (where a piece of the stream starts, the module put in the window first)
    if base:
        shared = [(at, path) for at, path, _data in records(content) if at >= off and path in base]
        cuts = ([] if shared and shared[0][0] == off else cuts) + shared
    d = zlib.decompressobj(-wbits)
    history = b""  # the decoder's output, its last window bytes
    for i, (start, path) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else len(content)
        if path is not None:
            primed = base[path][-min(window, 65535) :]
            if len(d.decompress(stored_block(primed))) != len(primed):
                raise DbchError("the decoder did not take the stored block")  # zlib's own fault
            history = (history + primed)[-window:]
        if history:
            comp = zlib.compressobj(LEVEL, zlib.DEFLATED, -wbits, 9, zdict=history)
        else:
            comp = zlib.compressobj(LEVEL, zlib.DEFLATED, -wbits, 9)
        piece = content[start:end]
        z = comp.compress(piece) + comp.flush(zlib.Z_FINISH if end == len(content) else zlib.Z_SYNC_FLUSH)
        history = (history + piece)[-window:]
        pos = 0
        at = start
        first = path
        while pos < len(z):
            k = min(step, len(z) - pos)
            while True:
                trial = d.copy()
                out = trial.decompress(z[pos : pos + k])
                if len(out) <= most or k == 1:
                    break
                k = max(1, min(k - 1, k * most // len(out)))
            d = trial
            yield at, z[pos : pos + k], out, first
            first = None
            pos += k
            at += len(out)
        if at != end:
            raise DbchError(f"the deflate stream gives {at} bytes, not {end}")  # zlib's own fault
    if not d.eof:
        raise DbchError("the deflate stream does not end")  # zlib's own fault


def _send_stream(
    client: AgentClient,
    content: bytes,
    off: int,
    step: int,
    wbits: int,
    most: int,
    progress,
    tally: dict,
    base: dict[str, bytes] | None = None,
    ahead: int = 1,
) -> str | None:
    """content from off to its end as fw.chunk requests of one raw deflate stream (stream_chunks),
    counted in tally ("sent": image bytes, "stream": compressed bytes), against base's files if
    given, with up to `ahead` of them unanswered where the hub says its console buffers them
    (fw.begin's zw) and the client can send ahead (the next chunk is on the line while the hub
    stages one); None, or the hub's reason when it answered a chunk at another offset or without a
    stream (a new fw.begin goes on from there: a chunk sent after it is answered at another offset
    too, and staged not at all). FirmwareError if it refuses one."""
    ahead = max(1, min(int(ahead), 4)) if hasattr(client, "send_ahead") else 1
    sent: list[tuple] = []  # (the answer, or its id when sent ahead; offset; image bytes; compressed bytes)

    def settle() -> str | None:
        got, at, n, k = sent.pop(0)
        r = client.answer(got, "fw.chunk") if ahead > 1 else got
        if not r.ok:
            if r.rc == "E49" and isinstance(r.data, dict) and "offset" in r.data:
                return r.err or "chunk refused"
            raise FirmwareError("fw.chunk", r.rc, r.err)
        tally["sent"] += n
        tally["stream"] += k
        if r.data["offset"] != at + n:  # not where this stream is: a new one from there
            return f"the hub is at offset {r.data['offset']}, the stream at {at + n}"
        return None

    try:
        for at, z, out, path in stream_chunks(content, off, wbits, step, most, base):
            if progress:
                progress(at)
            args = {"offset": at, "z": z, "n": len(out), "c": zlib.crc32(out)}
            if path is not None:
                args["p"] = path
            got = client.send_ahead("fw.chunk", args) if ahead > 1 else client.request("fw.chunk", args)
            sent.append((got, at, len(out), len(z)))
            while len(sent) >= ahead:
                why = settle()
                if why is not None:
                    return why
        while sent:
            why = settle()
            if why is not None:
                return why
    finally:
        if ahead > 1:
            client.forget()  # the answers still due (after a refusal or a lost link) are not waited for
    return None
