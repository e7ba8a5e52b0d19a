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
# when a scheduled activation is due). agent.image and agent.p256 are imported when an image
# comes: a hub that is not being updated holds none of them in its heap.
import hashlib

from agent import boot
from agent.fwboot import CONFIRM_MS, MAX_CHUNK, parent_dir  # noqa: F401 (the tests take CONFIRM_MS and MAX_CHUNK from here)
from hal.compat import const, hexstr

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


_CUM_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _days(y, m, d):
    # days from 1970-01-01 (proleptic Gregorian)
    y1 = y - 1
    n = 365 * (y - 1970) + (y1 // 4 - 1969 // 4) - (y1 // 100 - 1969 // 100) + (y1 // 400 - 1969 // 400)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return n + _CUM_DAYS[m - 1] + (1 if leap and m > 2 else 0) + d - 1


def parse_utc(text):
    """UTC seconds since 1970 from 'YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm|-hh:mm]' (ValueError)."""
    t = text.strip()
    if len(t) < 19 or t[4] != "-" or t[7] != "-" or t[10] not in "Tt" or t[13] != ":" or t[16] != ":":
        raise ValueError("{!r} is not an ISO 8601 UTC time (YYYY-MM-DDThh:mm:ssZ)".format(text))
    try:
        y, mo, d = int(t[0:4]), int(t[5:7]), int(t[8:10])
        h, mi, s = int(t[11:13]), int(t[14:16]), int(t[17:19])
        rest = t[19:]
        if rest.startswith("."):
            i = 1
            while i < len(rest) and rest[i].isdigit():
                i += 1
            if i == 1:
                raise ValueError
            rest = rest[i:]
        off = 0
        if rest in ("", "Z", "z"):
            pass
        elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
            off = (int(rest[1:3]) * 60 + int(rest[4:6])) * 60
            if rest[0] == "-":
                off = -off
        else:
            raise ValueError
    except ValueError:
        raise ValueError("{!r} is not an ISO 8601 UTC time (YYYY-MM-DDThh:mm:ssZ)".format(text))
    if y < 1970 or not 1 <= mo <= 12 or not 1 <= d <= 31 or h > 23 or mi > 59 or s > 60:
        raise ValueError("{!r} is out of range".format(text))
    return _days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off


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


def _bytes(args, name, lo, hi):
    v = args.get(name)
    if not isinstance(v, (bytes, bytearray)) or not lo <= len(v) <= hi:
        if lo == hi:
            raise FwError(RC_BAD, "{} must be {} bytes".format(name, lo))
        raise FwError(RC_BAD, "{} must be {} to {} bytes".format(name, lo, hi))
    return bytes(v)


def _int(args, name):
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

    def _path(self, name):
        return boot.join(self.root, name)

    def handle(self, name, args):
        # one fw.* operation -> (rc, data, err); FwError becomes its code and message
        try:
            return getattr(self, "op_" + name[3:])(args)
        except FwError as e:
            return e.code, e.data, str(e)
        except OSError as e:  # e.g. the flash is full: nothing half-done is kept as valid
            return RC_STATE, None, "flash error: {}".format(e)

    def start_due(self, act):
        # a scheduled activation whose time has come (agent.fwboot's tick)
        try:
            self._start(act)
        except FwError as e:
            self.svc._finish(act, "failed", str(e))

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
            except ImportError:
                return
            self._incidents = inc
        try:
            from agent.triage import TAMPERED_IMAGE

            inc.record(TAMPERED_IMAGE, detail)
        except Exception as e:  # recording must never stop the refusal from being answered
            print("firmware: incident not recorded:", e)

    def _trusted_key(self):
        try:
            f = self.fs.open(self._path(boot.KEY), "rb")
        except OSError:
            raise FwError(RC_AUTH, "no trusted signing key on this device (flash it with dbch flash --signing-key)")
        try:
            key = bytes(f.read())
        finally:
            f.close()
        try:
            from agent import p256

            p256.parse_public_key(key)
        except ValueError:
            raise FwError(RC_AUTH, "the trusted signing key on this device is damaged (flash it again)")
        return key

    def _check_sig(self, digest, sig):
        from agent import p256

        if not p256.verify(self._trusted_key(), digest, sig):
            self._security("bad signature for image {}".format(hexstr(digest)))
            raise FwError(RC_AUTH, "bad signature: the image is not signed by the trusted key")

    # -- slots ---------------------------------------------------------------------------------
    def _state(self):
        return boot.read_state(self.fs, self.root)

    def _inactive(self, st):
        if st["trial"] is not None:
            raise FwError(RC_STATE, "the trial boot of slot {} is not confirmed yet".format(st["trial"]))
        return boot.other(self.svc.slot)

    def ready(self, slot, digest=None):
        m = boot.read_manifest(self.fs, self.root, slot)
        if m is None or not isinstance(m.get("hash"), str):
            return None
        if digest is not None and m["hash"] != hexstr(digest):
            return None
        return m

    def _find(self, digest):
        """The slot holding a staged and verified image with this hash, other than the running one."""
        for s in boot.SLOTS:
            if s != self.svc.slot and self.ready(s, digest) is not None:
                return s
        return None

    # -- staging -------------------------------------------------------------------------------
    def _blob_size(self):
        p = self._path(STAGE)
        return self.fs.size(p) if self.fs.exists(p) else 0

    def _drop_blob(self):
        p = self._path(STAGE)
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
            f = self.fs.open(self._path(STAGE), "rb")
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
        digest = _bytes(args, "hash", 32, 32)
        size = _int(args, "size")
        sig = _bytes(args, "sig", 8, 72)
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
            _mkdirs(self.fs, parent_dir(self._path(STAGE)))
            rec = {"hash": digest, "size": size, "sig": sig}
            self.store.put("fw.stage", rec)
            sess = _Session(rec, self.board_name)
            self._session = sess
        return RC_OK, {"offset": sess.staged, "chunk": self.svc.max_chunk, "ready": False}, None

    def op_chunk(self, args):
        offset = _int(args, "offset")
        data = _bytes(args, "data", 1, self.svc.max_chunk)
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
        f = self.fs.open(self._path(STAGE), "ab")
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
        self._check_sig(rec["hash"], rec["sig"])
        st = self._state()
        slot = self._inactive(st)
        act = self.svc._act
        if act is not None and act.get("state") == "scheduled" and act.get("slot") == slot:
            raise FwError(RC_STATE, "an activation of slot {} is scheduled: cancel it first".format(slot))
        self._unpack(rec, slot)
        return RC_OK, {"hash": rec["hash"], "version": manifest["version"], "slot": slot}, None

    def _unpack(self, rec, slot):
        from agent.image import ImageError, Parser

        fs = self.fs
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
        f = fs.open(self._path(STAGE), "rb")
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

    # -- activation ----------------------------------------------------------------------------
    def op_activate(self, args):
        digest = _bytes(args, "hash", 32, 32)
        when = args.get("execution")
        if when is None:
            at = None
        elif isinstance(when, str):
            try:
                at = parse_utc(when)
            except ValueError as e:
                raise FwError(RC_BAD, "execution: {}".format(e))
        elif isinstance(when, int) and not isinstance(when, bool) and when >= 0:
            at = when
        else:
            raise FwError(RC_BAD, "execution must be null, an ISO 8601 UTC time or UTC seconds")
        if self.svc.running_hash() == digest:
            raise FwError(RC_STATE, "image {} is the one running already".format(hexstr(digest)))
        st = self._state()
        self._inactive(st)
        slot = self._find(digest)
        if slot is None:
            raise FwError(RC_STATE, "no staged and verified image has hash {}".format(hexstr(digest)))
        m = self.ready(slot, digest)
        act = {
            "hash": digest,
            "slot": slot,
            "version": m.get("version"),
            "at": at,
            "state": "scheduled",
            "attempt": st["attempt"] + 1,
            "from": self.svc.version,
        }
        now = self.clock.utc()
        if at is not None and at > now:
            self.store.put("fw.act", act)
            self.svc._act = act
            return RC_OK, {"slot": slot, "version": act["version"], "at": at, "reboot": False}, None
        self._start(act)
        return RC_OK, {"slot": slot, "version": act["version"], "at": None, "reboot": True}, None

    def _start(self, act):
        # Re-check at the moment of activation (a scheduled one waited).
        st = self._state()
        self._inactive(st)
        if self.ready(act["slot"], act["hash"]) is None:
            raise FwError(RC_STATE, "the image to activate is no longer staged")
        act = dict(act)
        act["state"] = "started"
        act["attempt"] = st["attempt"] + 1
        self.store.put("fw.act", act)
        self.svc._act = act
        boot.start_trial(self.fs, self.root, act["slot"], act["attempt"])
        self.hub.reboot_requested = True

    def op_cancel(self, args):
        act = self.svc._act
        if act is None or act.get("state") != "scheduled":
            raise FwError(RC_NO_CANCEL, "no firmware activation is scheduled")
        h = args.get("hash")
        if h is not None and h != act.get("hash"):
            raise FwError(RC_NO_CANCEL, "the scheduled activation is of another image")
        self.store.delete("fw.act")
        self.svc._act = None
        return RC_OK, {"hash": act["hash"]}, None

    # -- status --------------------------------------------------------------------------------
    def op_status(self, args):
        st = self._state()
        slots = {}
        for s in boot.SLOTS:
            m = boot.read_manifest(self.fs, self.root, s)
            slots[s] = {"version": m.get("version"), "hash": m.get("hash")} if m else None
        staging = None
        rec = self.store.get("fw.stage")
        if isinstance(rec, dict) and isinstance(rec.get("hash"), bytes):
            n = self._session.staged if self._session is not None else self._blob_size()
            staging = {"hash": hexstr(rec["hash"]), "size": rec.get("size"), "staged": n}
        act = self.svc._act
        sched = None
        if act is not None:
            sched = {
                "hash": hexstr(act["hash"]),
                "slot": act.get("slot"),
                "at": act.get("at"),
                "state": act.get("state"),
            }
        last = self.store.get("fw.last")
        if isinstance(last, dict) and isinstance(last.get("hash"), bytes):
            last = dict(last)
            last["hash"] = hexstr(last["hash"])
        key = self.fs.exists(self._path(boot.KEY))
        return (
            RC_OK,
            {
                "version": self.svc.version,
                "slot": self.svc.slot,
                "trial": self.svc.trial,
                "hash": self.svc.manifest.get("hash") if self.svc.manifest else None,
                "slots": slots,
                "staging": staging,
                "activation": sched,
                "last": last,
                "key": key,
                "boot": {
                    "active": st["active"],
                    "tries": st["tries"],
                    "attempt": st["attempt"],
                    "reverted": st["reverted"],
                },
                "chunk": self.svc.max_chunk,
                "max_size": self.svc.max_image,
                "utc": self.clock.utc(),
            },
            None,
        )
