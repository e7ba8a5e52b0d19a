# Receiving an image (fw.begin, fw.chunk, fw.end) for the firmware service (agent.fw_service,
# where the operations, records and anti-rollback rules are described): the staging record and
# the staged bytes on flash, resumed after a reboot, the image's header checked as soon as it is
# in, and an image below the minimum security counter refused. The service loads this module at
# the first fw.* request (or when a scheduled activation is due) and keeps it while an update is
# under way. What an operation needs beyond staging is loaded for that operation only and let go
# after it: agent.fw_install (the signature checks, and fw.end's checks and unpacking) and
# agent.fw_activate (activation, cancel and status); agent.fw_image is held until the image's
# header is in. A hub receiving an image holds this module, agent.fw_service, agent.fw_common
# and the running hash; receiving a compressed stream (fw.begin with z), also agent.fw_inflate
# with its window and buffer, let go when a begin asks for plain chunks or the staging ends.
import hashlib

from agent.fw_common import (
    RC_AUTH,
    RC_BAD,
    RC_OK,
    RC_ROLLBACK,
    RC_STATE,
    ROLLBACK,
    STAGE,
    FwError,
    arg_bytes,
    arg_int,
    boot_code,
    drop_boot_code,
    mkdirs,
    parent_dir,
)
from hal.compat import collect, const, hexstr, unload

_READ = const(1024)


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
        self.inflate = None  # the compressed stream fw.begin opened (agent.fw_inflate), if any

    def check(self, data):
        # feed the parser (ImageError) until it is past the header, then drop it
        p = self.parser
        if p is not None:
            p.feed(data)
            m = p.manifest
            if m is not None:
                self.sec = boot_code().counter(m)
                self.version = m["version"]
                self.parser = None
                unload("agent.fw_image")


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
            if self._session is None or self._session.inflate is None:
                unload("agent.fw_inflate")

    def activation(self, fn, *args):
        # agent.fw_activate's fn(self, *args), with its module loaded for the call only: a
        # scheduled activation whose time has come (start_due), a trial refused at start
        from agent import fw_activate

        try:
            return getattr(fw_activate, fn)(self, *args)
        finally:
            fw_activate = None
            unload("agent.fw_activate")
            drop_boot_code()

    # -- what agent.fw_install does, loaded for the moment ---------------------------------------
    def install(self, fn, *args):
        # agent.fw_install's fn(self, *args), with its module loaded for the call only
        from agent import fw_install

        try:
            return getattr(fw_install, fn)(self, *args)
        finally:
            fw_install = None
            unload("agent.fw_install")

    def _check_permit(self, args, digest):
        # args' rollback permission, if any, checked (FwError): True if there is one
        if args.get("permit") is None:
            return False
        self.install("check_permit", arg_bytes(args, "permit", 16, 256), digest)
        return True

    # -- anti-rollback -------------------------------------------------------------------------
    def admit(self, sec, version, permit, what="image"):
        # FwError (RC_ROLLBACK, recorded as a security incident) for an image below the minimum
        # security counter that has no rollback permission
        low = self.svc.min_sec()
        if permit or sec >= low:
            return
        self.install(
            "security",
            "{} {} refused: security counter {} below the minimum {}".format(what, version, sec, low),
            ROLLBACK,
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
        self.install("check_sig", digest, sig)
        permit = self._check_permit(args, digest)
        if self.svc.running_hash() == digest:
            return RC_OK, {"offset": size, "chunk": self.svc.max_chunk, "ready": True, "running": True}, None
        slot = self._find(digest)
        rec = self.store.get("fw.stage")
        same = isinstance(rec, dict) and rec.get("hash") == digest and rec.get("size") == size
        if slot is not None:
            m = self.ready(slot)
            self.admit(boot_code().counter(m), m.get("version"), permit)
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
        out = {"offset": sess.staged, "chunk": self.svc.max_chunk, "ready": False}
        sess.inflate = None  # every begin starts the stream again, at the staged offset
        if args.get("z") is not None:  # compressed chunks asked for: answered with the window taken
            from agent import fw_inflate

            fw_inflate.open_stream(self, sess, args["z"], out)
        return RC_OK, out, None

    def op_chunk(self, args):
        offset = arg_int(args, "offset")
        z = args.get("z") is not None  # compressed (agent.fw_inflate), else the bytes as they are
        data = None if z else arg_bytes(args, "data", 1, self.svc.max_chunk)
        sess = self._current()
        if offset != sess.staged:
            raise FwError(
                RC_BAD, "chunk at offset {}, expected {}".format(offset, sess.staged), {"offset": sess.staged}
            )
        inf = sess.inflate
        sess.inflate = None  # a plain chunk ends a compressed stream; a compressed one is broken
        if z:  # unless it is staged whole
            from agent import fw_inflate

            data = fw_inflate.chunk_bytes(self, inf, args, offset)
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
                    self.install("security", "image {} refused: {}".format(hexstr(sess.rec["hash"]), e))
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
        if z and sess.staged < size:  # the last chunk in: its window and buffer go before fw.end
            sess.inflate = inf
        self._session = sess
        return RC_OK, {"offset": sess.staged}, None

    def op_end(self, args):
        # agent.fw_install checks what was received and unpacks it (unloaded in handle), without a
        # compressed stream's window and buffer
        if self._session is not None and self._session.inflate is not None:
            self._session.inflate = None
            unload("agent.fw_inflate")
            collect()
        from agent import fw_install

        return fw_install.end(self)
