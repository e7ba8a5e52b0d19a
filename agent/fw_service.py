# The part of the firmware service that a board loads at every boot: the running version (from
# the running slot's manifest), finishing what a reboot or power cut interrupted, confirming a
# trial boot after FW_CONFIRM_MS of healthy running (N64), noticing a scheduled activation that
# is due, and reporting the outcome after a revert. When none of that is pending (idle()) the hub
# does not keep it. The first fw.* operation loads it again and imports agent.fw_staging (staging;
# the checks and the unpacking are agent.fw_install's, activation and status agent.fw_activate's,
# each loaded for one operation), which then stays loaded.
# So does a due activation, or an interrupted one whose outcome needs a staged slot checked. The
# operations, the records and the whole protocol are described in agent/fw_staging.py.
#
# A scheduled activation costs nothing to watch: its record ("fw.act", with its UTC due time
# "at") is read from the store once at boot and compared with Clock.utc() at each tick.
#
# Anti-rollback. Every image has a security counter (counter(): its manifest's "sec", else one
# derived from its version). The hub keeps a minimum, fwmin.json {"sec": n} beside the boot
# state (outside the slots, replaced atomically like it), which only goes up: to the running
# image's counter when a trial is confirmed (confirm(): after the boot state says so, so a trial
# that is reverted never raised it), and at every start on a confirmed slot (which finishes a
# raise that a power cut interrupted). The update operations refuse an image below the minimum
# (agent/fw_staging.py). At start, a trial below the minimum (the boot state pointing at an old
# slot) is not run on: it is reverted at once, unless its activation carried a rollback
# permission. A confirmed slot below the minimum (flashed by dbch flash, or the bootloader's
# fallback when the active slot is not bootable) runs, as nothing newer can: the minimum stays.
import json
import sys

from agent import VERSION, alerts
from hal.compat import const, hexstr, unload

MAX_IMAGE = const(2097152)  # default largest CONTENT; a board may set FW_MAX_IMAGE
MAX_CHUNK = const(4000)  # default data bytes of one fw.chunk (its frame stays under wire.MAX_BODY);
# a board with a small heap may set FW_MAX_CHUNK lower (the host sends what fw.begin announces)
CONFIRM_MS = const(2000)  # default healthy running time before a trial is confirmed
EVENT = "firmware"
MIN_FILE = "fwmin.json"  # the minimum security counter, at the firmware root
MAX_SEC = const(999999999)  # the largest security counter (a small int on every port)
BELOW_MIN = "below the minimum security counter"
ROLLBACK = "image_rollback"  # the incident kind of an image refused for being below the minimum


def version_counter(v):
    # The security counter a version stands for: MAJOR[.MINOR[.PATCH]] at its start, each part
    # 0-999, as MAJOR * 10**6 + MINOR * 10**3 + PATCH ("0.2.0" 2000, "1.2.3rc" 1002003, "0.1.0d"
    # 1000: what follows the digits is ignored). 0 for a version that does not start so.
    n = 0
    parts = 0
    cur = -1
    for c in v.encode():  # bytes: MicroPython interns each character a str yields
        if 48 <= c <= 57:
            cur = (cur if cur >= 0 else 0) * 10 + c - 48
            if cur > 999:
                return 0
        elif c == 46 and cur >= 0 and parts < 2:
            n = n * 1000 + cur
            parts += 1
            cur = -1
        else:
            break
    if cur >= 0:
        n = n * 1000 + cur
        parts += 1
    while 0 < parts < 3:
        n *= 1000
        parts += 1
    return n


def counter(m):
    # An image's security counter from its manifest (the image's, or a slot's manifest.json).
    s = m.get("sec")
    if isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEC:
        return s
    v = m.get("version")
    return version_counter(v) if isinstance(v, str) else 0


def read_min(fs, root):
    # The hub's minimum security counter (0 when it has none yet)
    try:
        f = fs.open(boot_code().join(root, MIN_FILE), "rb")
    except OSError:
        return 0
    try:
        v = json.loads(bytes(f.read()).decode()).get("sec")
    except (ValueError, UnicodeError, AttributeError):
        v = 0
    finally:
        f.close()
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEC else 0


def boot_code():
    # The bootloader's code. On a board it is already loaded (agent/boot.py, flashed as dbchboot):
    # use it rather than load the same code again from the slot; it also wrote the state this part
    # reads. Otherwise agent.boot is loaded for the moment it is needed (see drop_boot_code).
    b = sys.modules.get("dbchboot")
    if b is None:
        from agent import boot as b
    return b


def drop_boot_code():
    # agent.boot unloaded again (after a boot-time reading or a fw.* operation: nothing keeps it)
    unload("agent.boot")


def unload_all():
    # the firmware service's code: the update part, what it loads, and this module
    for name in (
        "agent.fw_activate",
        "agent.fw_install",
        "agent.fw_staging",
        "agent.fw_image",
        "agent.p256",
        "agent.boot",
        "agent.fw_service",
    ):
        unload(name)


def parent_dir(path):
    i = path.rfind("/")
    if i < 0:
        return ""
    if i == 0:
        return "/"
    return path[:i]


class _NoFs:
    # Stands in when the storage has no file system under it: nothing exists, nothing is written.
    def exists(self, path):
        return False

    def open(self, path, mode):
        raise OSError(2, "this board keeps no firmware files")


class FirmwareService:
    def __init__(self, hub, fs=None, root=None):
        self.hub = hub
        storage = hub.hal.storage
        self.fs = fs if fs is not None else getattr(storage, "fs", None)
        if self.fs is None:  # a storage that is not a file system: no slots, the built-in version
            self.fs = _NoFs()
        self.root = root if root is not None else parent_dir(getattr(storage, "root", ""))
        self.store = hub.store
        self.clock = hub.clock
        board = hub.board
        self.board_name = getattr(board, "NAME", None)
        self.max_image = getattr(board, "FW_MAX_IMAGE", MAX_IMAGE)
        self.max_chunk = min(getattr(board, "FW_MAX_CHUNK", MAX_CHUNK), MAX_CHUNK)
        self.confirm_ms = getattr(board, "FW_CONFIRM_MS", CONFIRM_MS)
        self.started_ms = self.clock.monotonic_ms()
        self._updater = None  # agent.fw_staging's Updater, once needed
        boot = boot_code()
        st = boot.read_state(self.fs, self.root)
        self.slot = boot.running(st)
        self.trial = st["trial"] is not None and st["tries"] > 0
        self.manifest = boot.read_manifest(self.fs, self.root, self.slot)
        boot = None
        v = self.manifest.get("version") if self.manifest else None
        self.version = v if isinstance(v, str) and 1 <= len(v) <= 8 else VERSION
        self.sec = counter(self.manifest or {"version": self.version})  # the running image's
        self._act = self.store.get("fw.act")
        if not isinstance(self._act, dict):
            self._act = None
        self._reconcile(st)
        if not self.trial:
            self._raise_min()
        elif self.sec < read_min(self.fs, self.root) and not self.permitted(self._act, self.running_hash()):
            self._refuse_trial(st)
        drop_boot_code()

    def updater(self):
        # The rest of the service (agent.fw_staging), imported the first time it is needed.
        u = self._updater
        if u is None:
            from agent.fw_staging import Updater

            u = self._updater = Updater(self)
        return u

    def idle(self):
        # Nothing to finish, confirm or watch, and no update under way (no image half staged, no
        # incident recorder of the update code's own): the hub need not keep this nor the update
        # code (unload_all).
        if self.trial or self._act is not None:
            return False
        u = self._updater
        return u is None or (u._incidents is None and self.store.get("fw.stage") is None)

    # -- start-up: finish what a reboot or power cut interrupted ------------------------------
    def _reconcile(self, st):
        act = self._act
        if act is None or act.get("state") != "started":
            return
        same = st["attempt"] == act.get("attempt")
        if same and st["trial"] == act.get("slot"):
            return  # trial running (confirmed later by tick), or the reboot into it is pending
        if same and st["active"] == act.get("slot") == self.slot:
            self._report_activated(act)  # confirmed, but cut before N64 went out
            return
        rev = st["reverted"]
        if isinstance(rev, dict) and rev.get("attempt") == act.get("attempt"):
            self._finish(act, "reverted", rev.get("why"))
        elif act.get("at") is not None and self.updater().ready(act.get("slot"), act.get("hash")) is not None:
            # a scheduled activation (already answered I0) cut short before the trial was set:
            # it is due, so the next tick starts it again
            act = dict(act)
            act["state"] = "scheduled"
            self.store.put("fw.act", act)
            self._act = act
        else:
            # an immediate one cut short: it was never answered, so it is not done behind the
            # requester's back; the outcome is reported
            self._finish(act, "failed", "the trial boot never started")

    # -- anti-rollback -------------------------------------------------------------------------
    def min_sec(self):
        # The lowest security counter an image may have to be staged or activated here: the
        # minimum, and the running image's counter once it is confirmed.
        m = read_min(self.fs, self.root)
        return m if self.trial or self.sec < m else self.sec

    @staticmethod
    def permitted(act, digest):
        # whether an activation record carries a rollback permission for the image digest
        return act is not None and act.get("permit") is True and act.get("hash") == digest

    def _raise_min(self):
        # The running image is confirmed: the minimum goes up to its counter (never down).
        if self.sec > read_min(self.fs, self.root) and not isinstance(self.fs, _NoFs):
            b = boot_code()
            try:
                b.write_json(self.fs, b.join(self.root, MIN_FILE), {"sec": self.sec})
            except OSError as e:  # no file system, or flash trouble: again at the next start
                print("firmware: minimum not raised:", e)

    def _refuse_trial(self, st):
        # A trial below the minimum, without a permission: reverted before it is confirmed; the
        # board reboots into the active slot, which reports the outcome (_reconcile).
        st["reverted"] = {"slot": st["trial"], "attempt": st["attempt"], "tries": st["tries"], "why": BELOW_MIN}
        st["trial"] = None
        st["tries"] = 0
        boot_code().write_state(self.fs, self.root, st)
        self.trial = False
        self.hub.reboot_requested = True
        self.updater()._security("trial boot of {} refused: {}".format(self.version, BELOW_MIN), ROLLBACK)

    def _finish(self, act, result, why=None):
        last = {"result": result, "hash": act.get("hash"), "version": act.get("version"), "utc": self.clock.utc()}
        if why:
            last["why"] = why
        if result != "activated":
            ev = dict(last)
            ev["hash"] = hexstr(ev["hash"]) if isinstance(ev["hash"], bytes) else None
            ev["running"] = self.version
            self.hub.outbox.append(EVENT, ev)
        self.store.put("fw.last", last)
        self.store.delete("fw.act")
        self._act = None

    def _report_activated(self, act):
        kind, data = alerts.n64(self.hub.eui, self.version)
        self.hub.outbox.append(kind, data)
        if act is None:
            act = {"hash": self.running_hash(), "version": self.version}
        self._finish(act, "activated")

    def running_hash(self):
        # the FirmwareHash of the running image (bytes), from its manifest; None if unknown
        h = self.manifest.get("hash") if self.manifest else None
        try:
            from binascii import unhexlify

            return unhexlify(h) if isinstance(h, str) else None
        except ValueError:
            return None

    # -- periodic work -------------------------------------------------------------------------
    def tick(self, now):
        try:
            if self.trial and now - self.started_ms >= self.confirm_ms:
                self.confirm()
            act = self._act
            if act is not None and act.get("state") == "scheduled" and self.clock.utc() >= act.get("at", 0):
                self.updater().start_due(act)
        except (OSError, MemoryError) as e:  # flash trouble, or no room to load: again next tick
            print("firmware: tick failed:", e)

    def confirm(self):
        # The trial boot is healthy: make its slot the active one and report N64.
        if not self.trial:
            return False
        boot_code().confirm(self.fs, self.root)
        self.trial = False
        self._raise_min()  # after the confirmation: a cut between the two is finished at start
        drop_boot_code()
        self._report_activated(self._act)
        return True
