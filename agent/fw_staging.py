# Firmware update on the device: receive a signed image in chunks (resumable), verify it
# (SHA-256 streamed, ECDSA P-256 with agent.p256), unpack it into the inactive slot, activate it
# by its FirmwareHash (now, at a UTC time, or cancel), confirm the trial boot once healthy and
# report DCC Alert N64 through the outbox. Image format: agent/fw_image.py. Slots, boot state and
# the bootloader: agent/boot.py. Files live under the firmware root: the directory holding the
# agent's storage directory (the board's flash root, where main.py is).
#
# Operations (args -> data), all answered with a response code:
#   fw.begin  {hash: 32 bytes, size: CONTENT bytes, sig: DER, permit?}  -> {offset, chunk, ready}
#             Starts or resumes staging. The signature is checked over hash first. Resuming the
#             same hash continues at the persisted offset (the staged prefix is re-hashed from
#             flash); another hash discards the old staging. ready: already staged (or running).
#             An image whose header is already known here (staged in a slot, or a resumed
#             staging's prefix) and is below the minimum security counter is refused here.
#   fw.chunk  {offset, data: 1..chunk bytes} -> {offset}  offset must be the staged length. The
#             image's header (magic, format, manifest: board, announced size, security counter)
#             is checked as soon as it is in: an image that is not one, is for another board or
#             is below the minimum security counter is refused there.
#   fw.end    {} -> {hash, version, slot}  all bytes staged: hash and signature checked, then the
#             image parsed from flash into the inactive slot (which is then "staged and
#             verified"); a payload the parser refuses is answered here.
#   fw.activate {hash, execution: null | ISO 8601 UTC text | UTC seconds, permit?}
#             -> {slot, version, at}
#             execution null or past: the board reboots into the image on trial after answering;
#             future: scheduled (the hub's tick checks Clock.utc()). Replaces a scheduled one.
#   fw.cancel {hash?} -> {hash}  cancels the scheduled activation.
#   fw.status {} -> running slot/version/hash, slots, staging, schedule, last result, boot state,
#             sec (the running image's security counter), min (the hub's minimum).
#
# Anti-rollback (the counter and the minimum: agent/fw_service.py). An image whose security counter
# is below the hub's minimum (or below the running image's, once that is confirmed) is refused
# at fw.begin / fw.chunk as soon as its header is known, again at fw.end and at fw.activate, and
# when a scheduled activation comes due. Equal or higher is accepted. permit is a rollback
# permission (agent/fw_image.py: the hub's EUI-64 and the image's FirmwareHash, signed with the
# firmware key): with it the image named is accepted below the minimum. It is checked whenever
# it is given; fw.begin remembers it for that staging, fw.activate for that activation, so a
# rollback gives it to both (staging an image already in a slot needs it at fw.activate only).
# The minimum is not lowered by a permitted rollback: the next image must again reach it.
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
#         flash failed (full); and (RC_ROLLBACK) an image below the minimum security counter
#         without a rollback permission, or a permission for another hub or image: the err
#         text says "minimum" or "rollback permission", data {sec, min}; recorded as a security
#         incident ("image_rollback", major at the first)
#   E52   fw.cancel with no scheduled activation (Unable to cancel Future Dated Request)
#   A rollback permission that is malformed is E49, one with a bad signature E100 (and a
#   "tampered_image" incident, as for an image).
#
# Records (agent.store): "fw.stage" {hash, size, sig} while an image is received (its bytes are
# in slots/stage.img, whose length is the staged offset); "fw.act" {hash, slot, version, at,
# state: "scheduled"|"started", attempt, from} for a scheduled or started activation;
# "fw.last" {result, hash, version, utc, why?} the last outcome. fw.stage and fw.act carry
# "permit": true when a rollback permission was checked for them. The minimum security counter
# is fwmin.json at the firmware root (agent/fw_service.py).
#
# Activation: fw.act "started" is written, then the boot state gets the trial (one atomic
# write), then the board reboots. After CONFIRM_MS of healthy running on the trial slot the
# service confirms (boot state: trial becomes active), raises the minimum security counter to
# the image's, appends N64, writes fw.last and drops fw.act. A power cut between any two of
# those steps is finished at the next start (N64 is at least once). If the bootloader reverted
# the trial, the old image reports a "firmware" event {result: "reverted", hash, version,
# running, why, utc} instead (result "failed" when an immediate activation was cut before its
# trial was set: it was never answered I0). A scheduled activation cut at that point is started
# again.
#
# This module is the part of the service that only an update needs: agent.fw_service (loaded at
# every boot) keeps the running version, the trial confirmation, the watch on a scheduled
# activation and the outcome reports, and imports this module at the first fw.* request (or
# when a scheduled activation is due). Activation, cancel and status are in agent.fw_activate,
# loaded for one operation at a time; so is agent.fw_install (the signature checks, and fw.end's
# checks and unpacking). agent.fw_image is held until the image's header is in, and agent.p256
# only while a signature is checked: a hub that is not being updated holds none of them in its
# heap, and one receiving an image holds this module, agent.fw_service and the running hash.
import hashlib

from agent.fw_service import CONFIRM_MS, MAX_CHUNK, ROLLBACK, boot_code, counter, drop_boot_code, parent_dir  # noqa: F401 (the tests take CONFIRM_MS and MAX_CHUNK from here)
from hal.compat import const, hexstr, unload

RC_OK = "I0"
RC_BAD = "E49"  # = agent.fw_image.RC_FORMAT
RC_AUTH = "E100"
RC_STATE = "E5"
RC_ROLLBACK = "E5"  # an image below the minimum security counter: the device's state refuses it
RC_NO_CANCEL = "E52"

_READ = const(1024)
STAGE = "slots/stage.img"


class FwError(Exception):
    def __init__(self, code, msg, data=None):
        super().__init__(msg)
        self.code = code
        self.data = data


def mkdirs(fs, path, known=None):
    if not path or path == "/" or (known is not None and path in known):
        return
    if not fs.exists(path):
        mkdirs(fs, parent_dir(path), known)
        fs.mkdir(path)
    if known is not None:
        known.append(path)


class _Session:
    # An image being received, in RAM: the running hash of what is staged, and the parser until
    # the image's header has been checked (agent.fw_image is then let go: the payload is checked as
    # fw.end unpacks it).
    def __init__(self, rec, board):
        self.rec = rec
        self.sha = hashlib.sha256()
        from agent.fw_image import Parser

        self.parser = Parser(board=board, total=rec["size"])
        self.staged = 0
        self.sec = None  # the image's security counter and version, once its header is in
        self.version = None

    def check(self, data):
        # feed the parser (ImageError) until it is past the header, then drop it
        p = self.parser
        if p is not None:
            p.feed(data)
            m = p.manifest
            if m is not None:
                self.sec = counter(m)
                self.version = m["version"]
                self.parser = None
                unload("agent.fw_image")


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
    # The update operations of a FirmwareService (agent.fw_service): svc holds the running slot and
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
        # is here; activation, cancel and status are agent.fw_activate's, loaded for the one
        # operation.
        try:
            if name == "fw.begin":
                return self.op_begin(args)
            if name == "fw.chunk":
                return self.op_chunk(args)
            if name == "fw.end":
                return self.op_end(args)
            from agent import fw_activate

            if name == "fw.activate":
                return fw_activate.activate(self, args)
            if name == "fw.cancel":
                return fw_activate.cancel(self, args)
            return fw_activate.status(self, args)
        except FwError as e:
            return e.code, e.data, str(e)
        except OSError as e:  # e.g. the flash is full: nothing half-done is kept as valid
            return RC_STATE, None, "flash error: {}".format(e)
        finally:
            unload("agent.fw_activate")
            unload("agent.fw_install")
            drop_boot_code()

    def start_due(self, act):
        # a scheduled activation whose time has come (agent.fw_service's tick)
        from agent import fw_activate

        try:
            fw_activate.start_due(self, act)
        finally:
            unload("agent.fw_activate")
            drop_boot_code()

    # -- what agent.fw_install does, loaded for the moment ---------------------------------------
    def _check_sig(self, digest, sig):
        from agent import fw_install

        try:
            fw_install.check_sig(self, digest, sig)
        finally:
            fw_install = None
            unload("agent.fw_install")

    def _security(self, detail, kind=None):
        from agent import fw_install

        try:
            fw_install.security(self, detail, kind)
        finally:
            fw_install = None
            unload("agent.fw_install")

    def _check_permit(self, args, digest):
        # args' rollback permission, if any, checked (FwError): True if there is one
        if args.get("permit") is None:
            return False
        permit = arg_bytes(args, "permit", 16, 256)
        from agent import fw_install

        try:
            fw_install.check_permit(self, permit, digest)
        finally:
            fw_install = None
            unload("agent.fw_install")
        return True

    # -- anti-rollback -------------------------------------------------------------------------
    def admit(self, sec, version, permit, what="image"):
        # FwError (RC_ROLLBACK, recorded as a security incident) for an image below the minimum
        # security counter that has no rollback permission
        low = self.svc.min_sec()
        if permit or sec >= low:
            return
        self._security(
            "{} {} refused: security counter {} below the minimum {}".format(what, version, sec, low), ROLLBACK
        )
        raise FwError(
            RC_ROLLBACK,
            "image {} has security counter {}, below this hub's minimum {}: an older image needs a "
            "rollback permission (dbch firmware permit-rollback)".format(version, sec, low),
            {"sec": sec, "min": low},
        )

    def _admit_staging(self, sess):
        # a staging whose header is in: dropped if its image is below the minimum
        if sess.sec is not None:
            try:
                self.admit(sess.sec, sess.version, sess.rec.get("permit"))
            except FwError:
                self._drop_staging()
                raise

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
        from agent.fw_image import ImageError

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
                    sess.check(mv[:k])
                    sess.sha.update(mv[:k])
                    sess.staged += k
            except ImageError:  # bytes on flash that the image never had: start again
                sess = _Session(rec, self.board_name)
            finally:
                f.close()
            if sess.staged == 0:
                self._drop_blob()
        self._admit_staging(sess)  # the minimum may have gone up since
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
        permit = self._check_permit(args, digest)
        if self.svc.running_hash() == digest:
            return RC_OK, {"offset": size, "chunk": self.svc.max_chunk, "ready": True, "running": True}, None
        slot = self._find(digest)
        rec = self.store.get("fw.stage")
        same = isinstance(rec, dict) and rec.get("hash") == digest and rec.get("size") == size
        if slot is not None:
            m = self.ready(slot)
            self.admit(counter(m), m.get("version"), permit)
            if same:
                self._drop_staging()
            return RC_OK, {"offset": size, "chunk": self.svc.max_chunk, "ready": True, "slot": slot}, None
        if same:
            if permit and not rec.get("permit"):
                rec["permit"] = True
                self.store.put("fw.stage", rec)
                if self._session is not None:
                    self._session.rec = rec
            sess = self._session if self._session is not None else self._resume(rec)
        else:
            self._session = None
            self._drop_blob()
            mkdirs(self.fs, parent_dir(self.stage_path))
            rec = {"hash": digest, "size": size, "sig": sig}
            if permit:
                rec["permit"] = True
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
        if sess.parser is not None:
            from agent.fw_image import ImageError

            try:
                sess.check(data)
            except ImageError as e:
                self._drop_staging()
                if e.code == RC_AUTH:
                    self._security("image {} refused: {}".format(hexstr(sess.rec["hash"]), e))
                raise FwError(e.code, "image refused at byte {}: {}".format(offset, e))
            self._admit_staging(sess)  # refused as soon as its header says it is too old
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
        # agent.fw_install checks what was received and unpacks it (unloaded in handle)
        from agent import fw_install

        return fw_install.end(self)
