# Firmware update on the device: receive a signed image in chunks (resumable), verify it
# (SHA-256 streamed, ECDSA P-256 with agent.p256), unpack it into the inactive slot, activate it
# by its FirmwareHash (now, at a UTC time, or cancel), confirm the trial boot once healthy and
# report DCC Alert N64 through the outbox. Image format: agent/image.py. Slots, boot state and
# the bootloader: agent/boot.py. Files live under the firmware root: the directory holding the
# agent's storage directory (the board's flash root, where main.py is).
#
# Operations (args -> data), all answered with a response code:
#   fw.begin  {hash: 32 bytes, size: CONTENT bytes, sig: DER}  -> {offset, chunk, ready}
#             Starts or resumes staging. The signature is checked over hash first. Resuming the
#             same hash continues at the persisted offset (the staged prefix is re-hashed from
#             flash); another hash discards the old staging. ready: already staged (or running).
#   fw.chunk  {offset, data: 1..chunk bytes} -> {offset}  offset must be the staged length.
#   fw.end    {} -> {hash, version, slot}  all bytes staged: hash, signature and image checked,
#             then unpacked into the inactive slot (which is then "staged and verified").
#   fw.activate {hash, execution: null | ISO 8601 UTC text | UTC seconds} -> {slot, version, at}
#             execution null or past: the board reboots into the image on trial after answering;
#             future: scheduled (the hub's tick checks Clock.utc()). Replaces a scheduled one.
#   fw.cancel {hash?} -> {hash}  cancels the scheduled activation.
#   fw.status {} -> running slot/version/hash, slots, staging, schedule, last result, boot state.
#
# Response codes (agent.codes):
#   I0    done
#   E49   malformed arguments, a chunk at the wrong offset, too large, truncated or malformed
#         image (the err text says which)
#   E11   the image is for another board (device type)
#   E100  authentication failed: bad signature, content that does not hash to the signed hash
#         (or a payload that does not match its manifest's sha256), or no trusted signing key
#         on the device; a failed check is recorded as a security incident (agent.triage)
#   E5    the device's state does not allow it: no staged and verified image has this hash,
#         a trial boot is not yet confirmed, an activation is scheduled, nothing staged, or the
#         flash failed (full)
#   E52   fw.cancel with no scheduled activation (Unable to cancel Future Dated Request)
#
# Records (agent.store): "fw.stage" {hash, size, sig} while an image is received (its bytes are
# in slots/stage.img, whose length is the staged offset); "fw.act" {hash, slot, version, at,
# state: "scheduled"|"started", attempt, from} for a scheduled or started activation;
# "fw.last" {result, hash, version, utc, why?} the last outcome.
#
# Activation: fw.act "started" is written, then the boot state gets the trial (one atomic
# write), then the board reboots. After CONFIRM_MS of healthy running on the trial slot the
# service confirms (boot state: trial becomes active), appends N64, writes fw.last and drops
# fw.act. A power cut between any two of those steps is finished at the next start (N64 is at
# least once). If the bootloader reverted the trial, the old image reports a "firmware" event
# {result: "reverted", hash, version, running, why, utc} instead (result "failed" when an
# immediate activation was cut before its trial was set: it was never answered I0). A scheduled
# activation cut at that point is started again.
#
# This module is the part of the service that only an update needs: agent.fwboot (loaded at
# every boot) keeps the running version, the trial confirmation, the watch on a scheduled
# activation and the outcome reports, and imports this module at the first fw.* request (or
# when a scheduled activation is due). Activation, cancel and status are in agent.fwactivate,
# loaded for one operation at a time. agent.image is held while an image comes in, and
# agent.p256 only while a signature is checked: a hub that is not being updated holds none of
# them in its heap, and one receiving an image holds no activation code.
import hashlib

from agent.fwboot import CONFIRM_MS, MAX_CHUNK, boot_code, drop_boot_code, parent_dir  # noqa: F401 (the tests take CONFIRM_MS and MAX_CHUNK from here)
from hal.compat import const, hexstr, unload

RC_OK = "I0"
RC_BAD = "E49"  # = agent.image.RC_FORMAT
RC_AUTH = "E100"
RC_STATE = "E5"
RC_NO_CANCEL = "E52"

_READ = const(1024)
STAGE = "slots/stage.img"


class FwError(Exception):
    def __init__(self, code, msg, data=None):
        super().__init__(msg)
        self.code = code
        self.data = data


class _SlotWriter:
    # Parser sink: writes each file of the image under a slot directory.
    def __init__(self, fs, base):
        self.fs = fs
        self.base = base
        self.f = None
        self.dirs = []

    def begin(self, path, n):
        full = self.base + "/" + path
        _mkdirs(self.fs, parent_dir(full), self.dirs)
        self.f = self.fs.open(full, "wb")

    def data(self, mv):
        self.f.write(mv)

    def end(self):
        f = self.f
        self.f = None
        try:
            self.fs.sync_file(f)
        finally:
            f.close()

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def _mkdirs(fs, path, known=None):
    if not path or path == "/" or (known is not None and path in known):
        return
    if not fs.exists(path):
        _mkdirs(fs, parent_dir(path), known)
        fs.mkdir(path)
    if known is not None:
        known.append(path)


def _is_dir(fs, path):
    try:
        fs.listdir(path)
        return True
    except OSError:
        return False


def _clear(fs, path):
    # remove every file under path (directories stay: empty ones are harmless)
    for n in fs.listdir(path):
        p = path + "/" + n
        if _is_dir(fs, p):
            _clear(fs, p)
        else:
            fs.remove(p)


class _Session:
    # An image being received, in RAM: the running hashes and the parser's state.
    def __init__(self, rec, board):
        self.rec = rec
        self.sha = hashlib.sha256()
        from agent.image import Parser

        self.parser = Parser(board=board, total=rec["size"])
        self.staged = 0


def arg_bytes(args, name, lo, hi):
    v = args.get(name)
    if not isinstance(v, (bytes, bytearray)) or not lo <= len(v) <= hi:
        if lo == hi:
            raise FwError(RC_BAD, "{} must be {} bytes".format(name, lo))
        raise FwError(RC_BAD, "{} must be {} to {} bytes".format(name, lo, hi))
    return bytes(v)


def arg_int(args, name):
    v = args.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise FwError(RC_BAD, "{} must be a non-negative integer".format(name))
    return v


class Updater:
    # The update operations of a FirmwareService (agent.fwboot): svc holds the running slot and
    # version, the trial flag and the activation record (svc._act), shared with the boot part.
    def __init__(self, svc):
        self.svc = svc
        self.hub = svc.hub
        self.fs = svc.fs
        self.root = svc.root
        self.store = svc.store
        self.clock = svc.clock
        self.board_name = svc.board_name
        self._incidents = None  # our own recorder, when the hub has none
        self._session = None
        b = boot_code()
        self.key_path = b.join(self.root, b.KEY)
        self.stage_path = b.join(self.root, STAGE)

    def handle(self, name, args):
        # one fw.* operation -> (rc, data, err); FwError becomes its code and message. Staging
        # is here; activation, cancel and status are agent.fwactivate's, loaded for the one
        # operation.
        try:
            if name == "fw.begin":
                return self.op_begin(args)
            if name == "fw.chunk":
                return self.op_chunk(args)
            if name == "fw.end":
                return self.op_end(args)
            from agent import fwactivate

            if name == "fw.activate":
                return fwactivate.activate(self, args)
            if name == "fw.cancel":
                return fwactivate.cancel(self, args)
            return fwactivate.status(self, args)
        except FwError as e:
            return e.code, e.data, str(e)
        except OSError as e:  # e.g. the flash is full: nothing half-done is kept as valid
            return RC_STATE, None, "flash error: {}".format(e)
        finally:
            unload("agent.fwactivate")
            drop_boot_code()

    def start_due(self, act):
        # a scheduled activation whose time has come (agent.fwboot's tick)
        from agent import fwactivate

        try:
            fwactivate.start_due(self, act)
        finally:
            unload("agent.fwactivate")
            drop_boot_code()

    # -- security incidents --------------------------------------------------------------------
    def _security(self, detail):
        # A refused image that failed authentication is a security event (SEC G3.5): recorded
        # with the hub's Incidents recorder (agent.triage) if it has one, else with our own,
        # which notifies an "incident" event through the outbox.
        inc = getattr(self.hub, "incidents", None) or self._incidents
        if inc is None:
            try:
                from agent.triage import Incidents

                outbox = self.hub.outbox
                inc = Incidents(notify=lambda report: outbox.append("incident", report) is not None)
            except (ImportError, MemoryError):  # no recorder on this board, or no room for it
                return
            self._incidents = inc
        try:
            from agent.triage import TAMPERED_IMAGE

            inc.record(TAMPERED_IMAGE, detail)
        except Exception as e:  # recording must never stop the refusal from being answered
            print("firmware: incident not recorded:", e)

    def _check_sig(self, digest, sig):
        # agent.p256 is loaded for the check only
        try:
            f = self.fs.open(self.key_path, "rb")
        except OSError:
            raise FwError(RC_AUTH, "no trusted signing key on this device (flash it with dbch flash --signing-key)")
        try:
            key = bytes(f.read())
        finally:
            f.close()
        from agent import p256

        try:
            try:
                p256.parse_public_key(key)
            except ValueError:
                raise FwError(RC_AUTH, "the trusted signing key on this device is damaged (flash it again)")
            ok = p256.verify(key, digest, sig)
        finally:
            p256 = None
            unload("agent.p256")
        if not ok:
            self._security("bad signature for image {}".format(hexstr(digest)))
            raise FwError(RC_AUTH, "bad signature: the image is not signed by the trusted key")

    # -- slots ---------------------------------------------------------------------------------
    def _state(self):
        return boot_code().read_state(self.fs, self.root)

    def _inactive(self, st):
        if st["trial"] is not None:
            raise FwError(RC_STATE, "the trial boot of slot {} is not confirmed yet".format(st["trial"]))
        return boot_code().other(self.svc.slot)

    def ready(self, slot, digest=None):
        m = boot_code().read_manifest(self.fs, self.root, slot)
        if m is None or not isinstance(m.get("hash"), str):
            return None
        if digest is not None and m["hash"] != hexstr(digest):
            return None
        return m

    def _find(self, digest):
        """The slot holding a staged and verified image with this hash, other than the running one."""
        for s in boot_code().SLOTS:
            if s != self.svc.slot and self.ready(s, digest) is not None:
                return s
        return None

    # -- staging -------------------------------------------------------------------------------
    def _blob_size(self):
        p = self.stage_path
        return self.fs.size(p) if self.fs.exists(p) else 0

    def _drop_blob(self):
        p = self.stage_path
        if self.fs.exists(p):
            self.fs.remove(p)

    def _drop_staging(self):
        self._session = None
        self._drop_blob()
        self.store.delete("fw.stage")

    def _resume(self, rec):
        # Rebuild the RAM state of a staging from flash: re-hash the staged prefix, streamed.
        from agent.image import ImageError

        sess = _Session(rec, self.board_name)
        n = self._blob_size()
        if n > rec["size"]:
            self._drop_blob()
            n = 0
        if n:
            buf = bytearray(_READ)
            mv = memoryview(buf)
            f = self.fs.open(self.stage_path, "rb")
            try:
                while sess.staged < n:
                    k = f.readinto(buf)
                    if not k:
                        break
                    k = min(k, n - sess.staged)
                    sess.parser.feed(mv[:k])
                    sess.sha.update(mv[:k])
                    sess.staged += k
            except ImageError:  # bytes on flash that the image never had: start again
                sess = _Session(rec, self.board_name)
            finally:
                f.close()
            if sess.staged == 0:
                self._drop_blob()
        self._session = sess
        return sess

    def _current(self):
        if self._session is not None:
            return self._session
        rec = self.store.get("fw.stage")
        if not isinstance(rec, dict) or not isinstance(rec.get("hash"), bytes):
            raise FwError(RC_STATE, "no image is being received: send fw.begin first")
        return self._resume(rec)

    def op_begin(self, args):
        digest = arg_bytes(args, "hash", 32, 32)
        size = arg_int(args, "size")
        sig = arg_bytes(args, "sig", 8, 72)
        if size > self.svc.max_image:
            raise FwError(
                RC_BAD, "image of {} bytes is too large: this board takes {}".format(size, self.svc.max_image)
            )
        if size < 16:
            raise FwError(RC_BAD, "image of {} bytes is too small to be one".format(size))
        self._check_sig(digest, sig)
        if self.svc.running_hash() == digest:
            return RC_OK, {"offset": size, "chunk": self.svc.max_chunk, "ready": True, "running": True}, None
        slot = self._find(digest)
        rec = self.store.get("fw.stage")
        same = isinstance(rec, dict) and rec.get("hash") == digest and rec.get("size") == size
        if slot is not None:
            if same:
                self._drop_staging()
            return RC_OK, {"offset": size, "chunk": self.svc.max_chunk, "ready": True, "slot": slot}, None
        if same:
            sess = self._session if self._session is not None else self._resume(rec)
        else:
            self._session = None
            self._drop_blob()
            _mkdirs(self.fs, parent_dir(self.stage_path))
            rec = {"hash": digest, "size": size, "sig": sig}
            self.store.put("fw.stage", rec)
            sess = _Session(rec, self.board_name)
            self._session = sess
        return RC_OK, {"offset": sess.staged, "chunk": self.svc.max_chunk, "ready": False}, None

    def op_chunk(self, args):
        offset = arg_int(args, "offset")
        data = arg_bytes(args, "data", 1, self.svc.max_chunk)
        sess = self._current()
        if offset != sess.staged:
            raise FwError(
                RC_BAD, "chunk at offset {}, expected {}".format(offset, sess.staged), {"offset": sess.staged}
            )
        size = sess.rec["size"]
        if offset + len(data) > size:
            raise FwError(RC_BAD, "chunk runs past the announced size of {} bytes".format(size), {"offset": offset})
        from agent.image import ImageError

        try:
            sess.parser.feed(data)
        except ImageError as e:
            self._drop_staging()
            if e.code == RC_AUTH:
                self._security("image {} refused: {}".format(hexstr(sess.rec["hash"]), e))
            raise FwError(e.code, "image refused at byte {}: {}".format(offset, e))
        self._session = None  # until the bytes are on flash
        f = self.fs.open(self.stage_path, "ab")
        try:
            f.write(data)
            self.fs.sync_file(f)
        finally:
            f.close()
        sess.sha.update(data)
        sess.staged += len(data)
        self._session = sess
        return RC_OK, {"offset": sess.staged}, None

    def op_end(self, args):
        rec, version = self._received()
        self._check_sig(rec["hash"], rec["sig"])
        st = self._state()
        slot = self._inactive(st)
        act = self.svc._act
        if act is not None and act.get("state") == "scheduled" and act.get("slot") == slot:
            raise FwError(RC_STATE, "an activation of slot {} is scheduled: cancel it first".format(slot))
        self._unpack(rec, slot)
        return RC_OK, {"hash": rec["hash"], "version": version, "slot": slot}, None

    def _received(self):
        # The whole image is staged and checked by the parser and against its hash: (its record,
        # its version). The parser's session and code are let go (unpacking parses again), so
        # they are not held while the signature is checked.
        sess = self._current()
        rec = sess.rec
        size = rec["size"]
        if sess.staged != size:
            raise FwError(
                RC_BAD, "truncated image: {} of {} bytes received".format(sess.staged, size), {"offset": sess.staged}
            )
        from agent.image import ImageError

        try:
            manifest = sess.parser.finish()
        except ImageError as e:
            self._drop_staging()
            raise FwError(e.code, str(e))
        if sess.sha.digest() != rec["hash"]:
            self._drop_staging()
            self._security("image content does not hash to its signed hash {}".format(hexstr(rec["hash"])))
            raise FwError(RC_AUTH, "tampered image: its content does not hash to the signed FirmwareHash")
        self._session = None
        unload("agent.image")
        return rec, manifest["version"]

    def _unpack(self, rec, slot):
        from agent.image import ImageError, Parser

        fs = self.fs
        boot = boot_code()
        base = boot.slot_dir(self.root, slot)
        man_path = base + "/" + boot.MANIFEST
        if fs.exists(man_path):
            fs.remove(man_path)  # the slot is not bootable from here until the new manifest
        _mkdirs(fs, base)
        _clear(fs, base)
        sink = _SlotWriter(fs, base)
        parser = Parser(board=self.board_name, total=rec["size"], sink=sink)
        sha = hashlib.sha256()
        buf = bytearray(_READ)
        mv = memoryview(buf)
        f = fs.open(self.stage_path, "rb")
        try:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                sha.update(mv[:k])
                parser.feed(mv[:k])
            m = parser.finish()
        except ImageError as e:
            self._drop_staging()
            raise FwError(RC_BAD, "image on flash is damaged: {}".format(e))
        finally:
            f.close()
            sink.close()
        if sha.digest() != rec["hash"]:
            self._drop_staging()
            raise FwError(RC_BAD, "image on flash does not match what was received: send it again")
        man = {
            "version": m["version"],
            "board": m["board"],
            "hash": hexstr(rec["hash"]),
            "size": rec["size"],
            "sha256": hexstr(m["sha256"]),
            "files": m["files"],
        }
        boot.write_json(fs, man_path, man)
        self._drop_staging()
