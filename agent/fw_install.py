# The end of an update's staging, fw.end: what was received is checked against its signed
# hash, the signature is checked again (agent.p256), and the image is parsed from flash into the
# inactive slot (agent.fw_image), whose manifest is written last: until then the slot is not
# bootable. Also the signature check of fw.begin, the check of a rollback permission (its
# format: agent/fw_image.py) and the record of a refusal as a security incident. The Updater
# (agent.fw_staging) loads this module for one operation (Updater.install), so a board receiving
# an image holds none of it; the protocol and records are in agent/fw_service.py, the codes in
# agent/fw_common.py.
#
# The steps of fw.end are one after the other, each letting its code go before the next loads
# its own: the hash of the received bytes (no code), the signature (agent.p256), the slot
# (agent.fw_image and agent.boot).
import hashlib

from agent.fw_common import (
    RC_AUTH,
    RC_BAD,
    RC_OK,
    RC_ROLLBACK,
    RC_STATE,
    ROLLBACK,
    FwError,
    boot_code,
    drop_boot_code,
    mkdirs,
    parent_dir,
)
from hal.compat import const, hexstr, unload

_READ = const(1024)


class _SlotWriter:
    # Parser sink: writes each file of the image under a slot directory.
    def __init__(self, fs, base):
        self.fs = fs
        self.base = base
        self.f = None
        self.dirs = []

    def begin(self, path, n):
        full = self.base + "/" + path
        mkdirs(self.fs, parent_dir(full), self.dirs)
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


def security(u, detail, kind=None):
    # A refused image that failed authentication (kind None: TAMPERED_IMAGE), or one below the
    # minimum security counter (ROLLBACK), is a security event (SEC G3.5): recorded with the
    # hub's Incidents recorder (agent.incidents) if it has one, else with the Updater's own,
    # which notifies an "incident" event through the outbox. Either kind makes a Major Security
    # Incident at its first event. Whatever goes wrong here (no room for the recorder, a damaged
    # one) is said on the console: the refusal is answered all the same.
    inc = getattr(u.hub, "incidents", None) or u._incidents
    try:
        if inc is None:
            from agent.incidents import Incidents

            outbox = u.hub.outbox
            inc = u._incidents = Incidents(notify=lambda report: outbox.append("incident", report) is not None)
        if kind is None:
            from agent.incidents import TAMPERED_IMAGE as kind
        if kind not in inc.thresholds:
            inc.thresholds[kind] = 1
        inc.record(kind, detail)
    except Exception as e:  # recording must never stop the refusal from being answered
        print("firmware: incident not recorded:", e)


def check_sig(u, digest, sig):
    if not _verify(u, digest, sig):
        security(u, "bad signature for image {}".format(hexstr(digest)))
        raise FwError(RC_AUTH, "bad signature: the image is not signed by the trusted key")


def check_permit(u, permit, digest):
    # A rollback permission (agent/fw_image.py) for this hub and the image digest, signed with the
    # trusted key; FwError otherwise: E49 malformed, E100 a bad signature (a security incident,
    # as for an image), RC_ROLLBACK one for another hub or image (recorded as a refused rollback).
    from agent.fw_image import ImageError, parse_permit

    try:
        signed, eui, target, sig = parse_permit(permit)
    except ImageError as e:
        raise FwError(RC_BAD, str(e))
    finally:
        unload("agent.fw_image")
    if not _verify(u, hashlib.sha256(signed).digest(), sig):
        security(u, "bad signature on a rollback permission for image {}".format(hexstr(target)))
        raise FwError(RC_AUTH, "bad signature: the rollback permission is not signed by the trusted key")
    why = None
    if eui != bytes(u.hub.eui):
        why = "the rollback permission is for hub {}, not this one".format(hexstr(eui))
    elif target != digest:
        why = "the rollback permission is for image {}, not this one".format(hexstr(target))
    if why is not None:
        security(u, why, ROLLBACK)
        raise FwError(RC_ROLLBACK, why)


def _verify(u, digest, sig):
    # agent.p256 is loaded for the check only
    try:
        f = u.fs.open(u.key_path, "rb")
    except OSError:
        raise FwError(RC_AUTH, "no trusted signing key on this device (flash it with dbch flash --signing-key)")
    try:
        key = bytes(f.read())
    finally:
        f.close()
    drop_boot_code()  # not needed for the check: its room goes to agent.p256's
    from agent import p256

    try:
        try:
            p256.parse_public_key(key)
        except ValueError:
            raise FwError(RC_AUTH, "the trusted signing key on this device is damaged (flash it again)")
        return p256.verify(key, digest, sig)
    finally:
        p256 = None
        unload("agent.p256")


def end(u):
    # fw.end: (rc, data, err) or FwError
    sess = u._current()
    rec = sess.rec
    size = rec["size"]
    if sess.staged != size:
        raise FwError(
            RC_BAD, "truncated image: {} of {} bytes received".format(sess.staged, size), {"offset": sess.staged}
        )
    if sess.sha.digest() != rec["hash"]:
        u._drop_staging()
        security(u, "image content does not hash to its signed hash {}".format(hexstr(rec["hash"])))
        raise FwError(RC_AUTH, "tampered image: its content does not hash to the signed FirmwareHash")
    u._session = None  # the parser, if a resume made one, goes with it
    unload("agent.fw_image")
    u._admit_staging(sess)  # the minimum may have gone up while it was received
    check_sig(u, rec["hash"], rec["sig"])
    slot = u._inactive(u._state())
    act = u.svc._act
    if act is not None and act.get("state") == "scheduled" and act.get("slot") == slot:
        raise FwError(RC_STATE, "an activation of slot {} is scheduled: cancel it first".format(slot))
    try:
        version = _unpack(u, rec, slot)
    finally:
        unload("agent.fw_image")
    return RC_OK, {"hash": rec["hash"], "version": version, "slot": slot}, None


def _unpack(u, rec, slot):
    # Parse the staged image from flash into the slot; its manifest last. The image's version.
    from agent.fw_image import ImageError, Parser

    fs = u.fs
    boot = boot_code()
    base = boot.slot_dir(u.root, slot)
    man_path = base + "/" + boot.MANIFEST
    if fs.exists(man_path):
        fs.remove(man_path)  # the slot is not bootable from here until the new manifest
    mkdirs(fs, base)
    _clear(fs, base)
    sink = _SlotWriter(fs, base)
    parser = Parser(board=u.board_name, total=rec["size"], sink=sink)
    sha = hashlib.sha256()
    buf = bytearray(_READ)
    mv = memoryview(buf)
    refused = None
    f = fs.open(u.stage_path, "rb")
    try:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            sha.update(mv[:k])
            if refused is None:
                try:
                    parser.feed(mv[:k])
                except ImageError as e:  # the rest is still hashed: was it the image or the flash?
                    refused = e
        if refused is None:
            try:
                m = parser.finish()
            except ImageError as e:
                refused = e
    finally:
        f.close()
        sink.close()
    parser = None
    if sha.digest() != rec["hash"]:
        u._drop_staging()
        raise FwError(RC_BAD, "image on flash does not match what was received: send it again")
    if refused is not None:
        # the signed bytes themselves are refused: their header passed, their payload did not
        u._drop_staging()
        if refused.code == RC_AUTH:
            security(u, "image {} refused: {}".format(hexstr(rec["hash"]), refused))
        raise FwError(refused.code, "image refused: {}".format(refused))
    man = {
        "version": m["version"],
        "board": m["board"],
        "hash": hexstr(rec["hash"]),
        "size": rec["size"],
        "sha256": hexstr(m["sha256"]),
        "files": m["files"],
        "sec": boot.counter(m),
    }
    boot.write_json(fs, man_path, man)
    u._drop_staging()
    return m["version"]
