# The firmware service the hub calls (Hub.fw()): receive a signed image in chunks (resumable),
# verify it (SHA-256 streamed, ECDSA P-256 with agent.p256), unpack it into the inactive slot,
# activate it by its FirmwareHash (now, at a UTC time, or cancel), confirm the trial boot once
# healthy and report DCC Alert N64 through the outbox. Image format: agent/fw_image.py. Slots,
# boot state, security counters and the bootloader: agent/boot.py. Files live under the firmware
# root: the directory holding the agent's storage directory (the board's flash root, where
# main.py is). Response codes: agent/fw_common.py.
#
# Operations (args -> data), all answered with a response code:
#   fw.begin  {hash: 32 bytes, size: CONTENT bytes, sig: DER, permit?, z?}
#             -> {offset, chunk, ready, z?, zc?, zn?, zw?, zd?}
#             Starts or resumes staging. The signature is checked over hash first. Resuming the
#             same hash continues at the persisted offset (the staged prefix is re-hashed from
#             flash); another hash discards the old staging. ready: already staged (or running).
#             An image whose header is already known here (staged in a slot, or a resumed
#             staging's prefix) and is below the minimum security counter is refused here.
#             z (9-15): the host offers the rest as one raw deflate stream with a window of at
#             most 2**z bytes; the answer's z is the window this board takes (zc: the most
#             compressed bytes a chunk, zn: the most bytes a chunk may give), absent when it
#             takes plain chunks only (no deflate, no room, or a hub that predates it: the host
#             then sends plain chunks). Each begin starts a new stream at the answered offset
#             (agent/fw_inflate.py). zw: the compressed chunks the host may have unanswered (the board
#             module's FW_CHUNKS_AHEAD, else 1). zd: the running image's FirmwareHash, whose files a chunk's
#             "p" may put in the window first (an update against the running image).
#   fw.chunk  {offset, data: 1..chunk bytes} or, in a compressed stream, {offset, z: 1..zc
#             compressed bytes, n: the image bytes they complete (0..zn), c: their CRC-32, p?:
#             a path of the running image, put in the window before z}
#             -> {offset}  (a chunk that does not give its n bytes of CRC c is refused, nothing
#             of it staged, and the stream is closed until the next fw.begin)
#             offset must be the staged length. The
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
# Records (agent.store): "fw.stage" {hash, size, sig} while an image is received (its bytes are
# in slots/stage.img, whose length is the staged offset); "fw.act" {hash, slot, version, at,
# state: "scheduled"|"started", attempt, from} for a scheduled or started activation;
# "fw.last" {result, hash, version, utc, why?} the last outcome. fw.stage and fw.act carry
# "permit": true when a rollback permission was checked for them.
#
# Activation: fw.act "started" is written, then the boot state gets the trial (one atomic
# write), then the board reboots. After CONFIRM_MS of healthy running on the trial slot the
# service confirms (boot state: trial becomes active), raises the minimum security counter to
# the image's, appends N64, writes fw.last and drops fw.act. A power cut between any two of
# those steps is finished at the next start (N64 is at least once). If the bootloader reverted
# the trial, the old image reports a "firmware" event {result: "reverted", hash, version,
# running, why, utc} instead (result "failed" when an immediate activation was cut before its
# trial was set: it was never answered I0). A scheduled activation cut at that point is started
# again. A scheduled activation costs nothing to watch: its record (with its UTC due time "at")
# is read from the store once at boot and compared with Clock.utc() at each tick.
#
# Anti-rollback. Every image has a security counter (agent.boot.counter: its manifest's "sec",
# else one derived from its version). The hub keeps a minimum, fwmin.json {"sec": n} beside the
# boot state (outside the slots, replaced atomically like it), which only goes up: to the
# running image's counter when a trial is confirmed (confirm(): after the boot state says so, so
# a trial that is reverted never raised it), and at every start on a confirmed slot (which
# finishes a raise that a power cut interrupted). An image below the minimum (or below the
# running image's counter, once that is confirmed) is refused at fw.begin / fw.chunk as soon as
# its header is known, again at fw.end and at fw.activate, and when a scheduled activation comes
# due; equal or higher is accepted. permit is a rollback permission (agent/fw_image.py: the hub's
# EUI-64 and the image's FirmwareHash, signed with the firmware key): with it the image named is
# accepted below the minimum. It is checked whenever it is given; fw.begin remembers it for that
# staging, fw.activate for that activation, so a rollback gives it to both (staging an image
# already in a slot needs it at fw.activate only). The minimum is not lowered by a permitted
# rollback: the next image must again reach it. A trial below the minimum (the boot state
# pointing at an old slot) is not booted, unless its activation carried a rollback permission
# (the boot state's "permit"): the bootloader reverts it before it runs, and the service on the
# active slot records that as an incident (once: the revert is "noted"); under a bootloader
# flashed before it read the minimum, the service reverts such a trial itself at start. A
# confirmed slot below the minimum (flashed by dbch flash, or the bootloader's fallback when the
# active slot is not bootable) runs, as nothing newer can: the minimum stays.
#
# The code is loaded only while it is needed (hal.compat.unload, so a small board's heap holds
# none of it otherwise). This module is what a boot needs: the running version (from the running
# slot's manifest), finishing what a reboot or power cut interrupted, confirming a trial boot,
# noticing a scheduled activation that is due, and reporting the outcome after a revert; when
# none of that is pending (idle()) the hub does not keep it. The first fw.* operation loads it
# again with agent.fw_staging (receiving an image), which then stays loaded, as it does for a
# due activation or an interrupted one whose outcome needs a staged slot checked. The staging
# loads agent.fw_install (the signature checks, fw.end's checks and unpacking) and
# agent.fw_activate (activation, cancel, status) for one operation at a time, agent.fw_image
# until the image's header is in, and agent.p256 only while a signature is checked. Imports
# point one way: fw_service -> fw_staging -> fw_install, fw_activate -> fw_common, agent.boot.
from agent import VERSION, alerts
from agent.fw_common import CONFIRM_MS, EVENT, MAX_CHUNK, MAX_IMAGE, boot_code, drop_boot_code, parent_dir
from hal.compat import hexstr, unload


def unload_all():
    # the firmware service's code: the update part, what it loads, and this module
    for name in (
        "agent.fw_activate",
        "agent.fw_install",
        "agent.fw_staging",
        "agent.fw_inflate",
        "agent.fw_image",
        "agent.p256",
        "agent.boot",
        "agent.fw_common",
        "agent.fw_service",
    ):
        unload(name)


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
        v = self.manifest.get("version") if self.manifest else None
        self.version = v if isinstance(v, str) and 1 <= len(v) <= 8 else VERSION
        self.sec = boot.counter(self.manifest or {"version": self.version})  # the running image's
        rev = st["reverted"]
        refused = isinstance(rev, dict) and rev.get("why") == boot.BELOW_MIN and not rev.get("noted")
        boot = rev = None
        self._act = self.store.get("fw.act")
        if not isinstance(self._act, dict):
            self._act = None
        self._reconcile(st)
        if not self.trial:
            if refused:  # by the bootloader, below the minimum: an incident, recorded once
                self.updater().activation("note_refusal", st)
            self._raise_min()
        elif self.sec < self.read_min() and not self.permitted(self._act, self.running_hash()):
            self.updater().activation("refuse_trial", st)  # reverted before it is confirmed
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
        m = self.read_min()
        return m if self.trial or self.sec < m else self.sec

    def read_min(self):
        # the hub's minimum security counter (agent.boot.read_min)
        return boot_code().read_min(self.fs, self.root)

    @staticmethod
    def permitted(act, digest):
        # whether an activation record carries a rollback permission for the image digest
        return act is not None and act.get("permit") is True and act.get("hash") == digest

    def _raise_min(self):
        # The running image is confirmed: the minimum goes up to its counter (never down).
        if self.sec > self.read_min() and not isinstance(self.fs, _NoFs):
            b = boot_code()
            try:
                b.write_json(self.fs, b.join(self.root, b.MIN_FILE), {"sec": self.sec})
            except OSError as e:  # no file system, or flash trouble: again at the next start
                print("firmware: minimum not raised:", e)

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
                self.updater().activation("start_due", act)
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
