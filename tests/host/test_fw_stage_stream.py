"""The host's side of compressed staging (host_tools.firmware.stage): the image as one deflate stream
cut into chunks that each complete what they say (stream_chunks), sent to a simulated hub (the
agent on CPython, whose decompressor is hal/zinflate.py); a hub that predates compressed staging
gets plain chunks; a chunk spoiled on its way is refused with nothing wrong staged, and the rest
goes in plain chunks; a lost answer mid-stream resumes with a new stream at the hub's offset. An update
against the image the hub runs (base): the stream refers to its modules, which the hub puts in
the window first; a base that is not the running image is not used; a module that differs on the
board is refused and the rest goes plain; the images the host kept, found by FirmwareHash."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent import boot
from agent import fw_image as image
from host_tools.firmware import sign, stage
from host_tools.link.client import AgentTimeout, Response
from tests.kits import fwkit


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


def code_like(n: int, seed: int) -> bytes:
    out = bytearray()
    i = seed
    while len(out) < n:
        out += b"\x10\x22qstr_%d\x00load_attr self.%s %d\n" % (i % 53, b"abcdefgh"[i % 8 :], i * 31 % 97)
        i += 1
    return bytes(out[:n])


def signed(key, version="5.0", size=6000):
    files = [(f"agent/m{i}.mpy", code_like(size + i * 50, i)) for i in range(4)]
    content = image.build(version, "sim", files)
    return content, content + image.trailer(sign.sign_content(content, key)), files


def device(key):
    dev = fwkit.Device(key=False)
    f = dev.flash.open("/" + boot.KEY, "wb")
    f.write(sign.public_point(key))
    f.close()
    return dev


class Hub:
    """An AgentClient stand-in calling a hub directly: it can forget fw.begin's z (a hub from
    before compressed staging), spoil the compressed bytes of one fw.chunk and lose one answer."""

    timeout = 5.0

    def __init__(self, dev, old=False, spoil_at=None, lose_at=None):
        self.dev = dev
        self.old = old
        self.spoil_at = spoil_at
        self.lose_at = lose_at
        self.chunks = 0
        self.ops = []

    def _do(self, op, args):
        args = dict(args or {})
        self.ops.append(op)
        if op == "fw.begin" and self.old:
            args.pop("z", None)
        if op == "fw.chunk":
            self.chunks += 1
            if self.chunks == self.spoil_at and "z" in args:
                z = bytearray(args["z"])
                z[len(z) // 2] ^= 0xFF
                args["z"] = bytes(z)
        rc, data, err = self.dev.hub.handle({"t": "q", "id": 1, "op": op, "a": args})
        if op == "fw.chunk" and self.chunks == self.spoil_at:
            self.refused = (rc, err, self.dev.flash.files().get("/slots/stage.img", b""))
        if op == "fw.begin" and self.old and isinstance(data, dict):
            data = {k: v for k, v in data.items() if not k.startswith("z")}
        if op == "fw.chunk" and self.chunks == self.lose_at:
            return None
        return Response(1, rc, data, err)

    def request(self, op, args=None, timeout=None):
        r = self._do(op, args)
        if r is None:
            raise AgentTimeout("link lost")
        return r


class HubAhead(Hub):
    """A Hub that takes chunks ahead, as a board whose console buffers them (fw.begin's zw): a
    request sent ahead is handled only when its answer, or a later request's, is waited for, in
    the order sent; most: the requests it ever had unanswered at once."""

    def __init__(self, dev, zw=2, **kw):
        super().__init__(dev, **kw)
        self.zw = zw
        self.queue = []  # (id, op, args) sent, not yet handled
        self.done = {}  # id: answer (None: lost)
        self.most = 0
        self.ids = iter(range(1, 1 << 30))

    def _run(self, upto):
        while self.queue and upto not in self.done:
            rid, op, args = self.queue.pop(0)
            r = self._do(op, args)
            if op == "fw.begin" and r is not None and isinstance(r.data, dict) and "z" in r.data:
                r = Response(r.id, r.rc, dict(r.data, zw=self.zw), r.err)
            self.done[rid] = r

    def send_ahead(self, op, args=None):
        rid = next(self.ids)
        self.queue.append((rid, op, args))
        self.most = max(self.most, len(self.queue))
        return rid

    def answer(self, rid, op, timeout=None):
        self._run(rid)
        r = self.done.pop(rid, None)
        if r is None:
            raise AgentTimeout("link lost")
        return r

    def forget(self):
        self.done.clear()

    def request(self, op, args=None, timeout=None):
        return self.answer(self.send_ahead(op, args), op)


def test_chunks_go_ahead_where_the_hub_buffers_them(key):
    dev = device(key)
    content, data, files = signed(key)
    c = HubAhead(dev)
    res = stage.send(c, data, chunk=500, wbits=11)
    assert res["sent"] == len(content) and c.most == 2  # one chunk on its way while one is answered
    assert fwkit.slot_files(dev.flash, "b") == dict(files)
    # a hub that says 1 (or says nothing) gets one at a time
    dev = device(key)
    c = HubAhead(dev, zw=1)
    stage.send(c, data, chunk=500, wbits=11)
    assert c.most == 1 and fwkit.slot_files(dev.flash, "b") == dict(files)


def test_a_chunk_sent_ahead_of_a_refused_one_is_not_staged(key):
    dev = device(key)
    content, data, files = signed(key)
    c = HubAhead(dev, spoil_at=3)
    res = stage.send(c, data, chunk=300)
    rc, _err, have = c.refused
    assert rc == "E49" and have == content[: len(have)] and len(have) < len(content)
    assert "nothing of it is staged" in res["fallback"] and res["sent"] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_a_lost_answer_with_a_chunk_ahead_resumes_with_a_new_stream(key):
    dev = device(key)
    content, data, files = signed(key)
    c = HubAhead(dev, lose_at=4)
    res = stage.send(c, data, chunk=300)
    assert c.ops.count("fw.begin") == 2 and res["sent"] < len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_stream_chunks_cut_one_stream_into_pieces_that_complete_what_they_say():
    content = code_like(40000, 3)
    pieces = list(stage.stream_chunks(content, 0, 12, 700, 2500))
    z = b"".join(p[1] for p in pieces)
    assert zlib.decompress(z, -12) == content
    assert len(z) < len(content) // 3 and all(p[3] is None for p in pieces)
    assert all(len(p[1]) <= 700 and len(p[2]) <= 2500 for p in pieces)
    assert [p[0] for p in pieces] == [sum(len(q[2]) for q in pieces[:i]) for i in range(len(pieces))]
    assert b"".join(p[2] for p in pieces) == content
    # from an offset: a new stream of the rest
    rest = list(stage.stream_chunks(content, 12345, 9, 4000, 8000))
    assert rest[0][0] == 12345 and b"".join(p[2] for p in rest) == content[12345:]


def test_send_stages_a_compressed_stream(key):
    dev = device(key)
    content, data, files = signed(key)
    c = Hub(dev)
    res = stage.send(c, data, chunk=500, wbits=11)
    assert res["wbits"] == 11 and res["sent"] == len(content)
    assert res["stream"] < len(content) // 2
    assert fwkit.slot_files(dev.flash, "b") == dict(files)
    # one compressed chunk per 500 bytes of stream, never more
    assert c.ops.count("fw.chunk") == -(-res["stream"] // 500)


def test_a_hub_that_predates_it_gets_plain_chunks(key):
    dev = device(key)
    content, data, files = signed(key)
    res = stage.send(Hub(dev, old=True), data, chunk=1000)
    assert res["wbits"] is None and res["stream"] == res["sent"] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)
    dev2 = device(key)
    res = stage.send(Hub(dev2), data, compress=False)
    assert res["wbits"] is None and res["stream"] == len(content)


def test_a_spoiled_chunk_is_refused_and_the_rest_goes_plain(key):
    dev = device(key)
    content, data, files = signed(key)
    c = Hub(dev, spoil_at=3)
    res = stage.send(c, data, chunk=300)
    rc, err, have = c.refused
    assert rc == "E49" and "nothing of it is staged" in err
    assert 0 < len(have) < len(content) and have == content[: len(have)]  # nothing wrong written
    assert "nothing of it is staged" in res["fallback"]
    assert res["sent"] == len(content)
    assert c.ops.count("fw.begin") == 2  # the second without z: plain chunks from the hub's offset
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_a_lost_answer_mid_stream_resumes_with_a_new_stream(key):
    dev = device(key)
    content, data, files = signed(key)
    c = Hub(dev, lose_at=4)
    res = stage.send(c, data, chunk=300)
    assert c.ops.count("fw.begin") == 2
    # the chunk whose answer was lost was staged, not sent again: sent counts what was answered
    assert len(content) - 8000 < res["sent"] < len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_the_window_offered_is_checked():
    with pytest.raises(ValueError, match="wbits"):
        stage.send(None, b"", wbits=16)


def updated(key, old_files):
    # the second of the four modules changed a little, the third replaced, the rest as they were
    files = list(old_files)
    files[1] = (files[1][0], files[1][1][:3000] + b"# changed\n" + files[1][1][3000:])
    files[2] = (files[2][0], code_like(5000, 99)[::-1])
    content = image.build("6.0", "sim", files)
    return content, content + image.trailer(sign.sign_content(content, key)), files


def running(key):
    # a hub whose slot a runs an image of four modules, and that image
    old = fwkit.Image("5.0", payload=[(f"agent/m{i}.mpy", code_like(6000 + i * 50, i)) for i in range(4)])
    dev = fwkit.Device(first=old, key=False)
    f = dev.flash.open("/" + boot.KEY, "wb")
    f.write(sign.public_point(key))
    f.close()
    return dev, old


def test_an_update_against_the_running_image_refers_to_its_modules(key):
    dev, old = running(key)
    content, data, files = updated(key, old.files)
    c = Hub(dev)
    res = stage.send(c, data, chunk=700, base=old.content)
    assert res["against"] and res["sent"] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)
    dev2, _ = running(key)
    alone = stage.send(Hub(dev2), data, chunk=700)
    assert not alone.get("against")
    assert res["stream"] < alone["stream"] * 2 // 3, (res["stream"], alone["stream"])
    # a lookup by FirmwareHash does as well; one that has nothing, as without
    dev3, _ = running(key)
    looked = stage.send(Hub(dev3), data, chunk=700, base=lambda h: old.content if h == old.hash else None)
    assert looked["against"] and looked["stream"] == res["stream"]
    dev4, _ = running(key)
    assert not stage.send(Hub(dev4), data, chunk=700, base=lambda h: None).get("against")


def test_a_base_that_is_not_the_running_image_is_not_used(key):
    dev, old = running(key)
    content, data, files = updated(key, old.files)
    other = image.build("4.0", "sim", old.files)
    res = stage.send(Hub(dev), data, chunk=700, base=other)
    assert not res.get("against") and res["sent"] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_a_running_module_that_differs_from_the_hosts_copy_is_refused_and_the_rest_goes_plain(key):
    dev, old = running(key)
    content, data, files = updated(key, old.files)
    f = dev.flash.open(boot.slot_dir("/", "a") + "/agent/m0.mpy", "wb")  # changed on the board
    f.write(code_like(6000, 7))
    f.close()
    res = stage.send(Hub(dev), data, chunk=700, base=old.content)
    assert "nothing of it is staged" in res["fallback"] and res["sent"] == len(content)
    assert fwkit.slot_files(dev.flash, "b") == dict(files)


def test_kept_images_are_found_by_their_firmware_hash(key, tmp_path, monkeypatch):
    from host_tools.firmware import images

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    content, data, _files = signed(key)
    assert images.kept_image(hashlib.sha256(content).digest()) is None
    images.keep_image(data)
    assert images.kept_image(hashlib.sha256(content).digest()) == content
    assert images.kept_image(bytes(32)) is None
