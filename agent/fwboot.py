# The part of the firmware service that a board loads at every boot: the running version (from
# the running slot's manifest), finishing what a reboot or power cut interrupted, confirming a
# trial boot after FW_CONFIRM_MS of healthy running (N64), noticing a scheduled activation that
# is due, and reporting the outcome after a revert. When none of that is pending (idle()) the hub
# does not keep it. The first fw.* operation loads it again and imports agent.firmware (staging;
# the checks and the unpacking are agent.fwinstall's, activation and status agent.fwactivate's,
# each loaded for one operation), which then stays loaded.
# So does a due activation, or an interrupted one whose outcome needs a staged slot checked. The
# operations, the records and the whole protocol are described in agent/firmware.py.
#
# A scheduled activation costs nothing to watch: its record ("fw.act", with its UTC due time
# "at") is read from the store once at boot and compared with Clock.utc() at each tick.
import sys

from agent import VERSION, alerts
from hal.compat import const, hexstr, unload

MAX_IMAGE = const(2097152)  # default largest CONTENT; a board may set FW_MAX_IMAGE
MAX_CHUNK = const(4000)  # default data bytes of one fw.chunk (its frame stays under wire.MAX_BODY);
# a board with a small heap may set FW_MAX_CHUNK lower (the host sends what fw.begin announces)
CONFIRM_MS = const(2000)  # default healthy running time before a trial is confirmed
EVENT = "firmware"


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
        "agent.fwactivate",
        "agent.fwinstall",
        "agent.firmware",
        "agent.image",
        "agent.p256",
        "agent.boot",
        "agent.fwboot",
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
        self._updater = None  # agent.firmware's Updater, once needed
        boot = boot_code()
        st = boot.read_state(self.fs, self.root)
        self.slot = boot.running(st)
        self.trial = st["trial"] is not None and st["tries"] > 0
        self.manifest = boot.read_manifest(self.fs, self.root, self.slot)
        boot = None
        v = self.manifest.get("version") if self.manifest else None
        self.version = v if isinstance(v, str) and 1 <= len(v) <= 8 else VERSION
        self._act = self.store.get("fw.act")
        if not isinstance(self._act, dict):
            self._act = None
        self._reconcile(st)
        drop_boot_code()

    def updater(self):
        # The rest of the service (agent.firmware), imported the first time it is needed.
        u = self._updater
        if u is None:
            from agent.firmware import Updater

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
        drop_boot_code()
        self.trial = False
        self._report_activated(self._act)
        return True
