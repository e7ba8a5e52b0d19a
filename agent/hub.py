# The hub: wires the domain services to a HAL and answers requests. One request in, exactly one
# response out, always with a response code; bad input never raises out of handle().
#
# Agent protocol codes (requests that are not DUIS service requests still get DUIS codes):
#   I0   done;  E13  unknown operation (the request type is not valid here);
#   E49  the request's arguments do not have the operation's format;
#   E0628xx  from configuration validation (agent/subghz.py).
#
# The validator (agent/subghz.py) is loaded for one configuration and unloaded after it: the hub
# keeps the validated configuration as plain data (its DUIS mapping, the usable channels, the
# scaled parameters and the four masks), so no code of the validator stays on a board's heap.
from agent import VERSION, alerts, codes
from agent.agility import Agility
from agent.dutycycle import DutyCycle
from agent.eui import format_eui, parse_eui
from agent.outbox import Outbox
from agent.store import Store
from hal import phy
from hal.compat import hexstr, unload

RC_OK = codes.SUCCESS
RC_UNKNOWN_OP = "E13"
RC_BAD_ARGS = "E49"

OUTBOX_CAPACITY = 64
_MAX_ADVANCE_MS = 31 * 24 * 3600 * 1000
UNSAVED_MAX_US = 1000000  # airtime a power cut may lose from the duty-cycle record
_FILLER = b"\x55" * 125


class BadArgs(ValueError):
    pass


def validate(mapping, region=None):
    """agent.subghz.validate() with its code unloaded after: (code, as_dict, errors, applied),
    applied = (DUIS mapping, usable channels, scaled parameters, masks) when the code is I0."""
    from agent import subghz

    try:
        r = subghz.validate(mapping, region=region)
        c = r.config
        applied = (c.to_mapping(), c.usable_channels(), dict(c.params), c.masks()) if c else None
        return r.code, r.as_dict(), r.errors, applied
    finally:
        subghz = r = c = None
        unload("agent.subghz")


def _arg(args, name, kind, default=None, required=False):
    if name not in args:
        if required:
            raise BadArgs("missing argument {!r}".format(name))
        return default
    v = args[name]
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise BadArgs("{} must be an integer".format(name))
    if kind is not int and not isinstance(v, kind):
        raise BadArgs("{} has the wrong type".format(name))
    return v


class Hub:
    def __init__(self, hal, board=None):
        self.hal = hal
        self.board = board
        self.radio = hal.radio
        self.clock = hal.clock
        self.eui = hal.identity.eui64()
        self.store = Store(hal.storage)
        self.outbox = Outbox(hal.storage, OUTBOX_CAPACITY)
        issued = self.outbox.next_seq  # before this boot raises anything (see _restore_config)
        regulated = getattr(board, "REGULATED_DUTY_CYCLE_PERMILLE", 25)
        self.duty = DutyCycle(regulated=regulated)
        self._unsaved_us = 0  # airtime recorded since the duty-cycle record was last written
        self._duty_state = None  # the state that record holds
        self.agility = Agility(self.radio, self.clock, self.store.get("agility"))
        self.config = None  # the applied configuration's DUIS mapping
        self._masks = None  # its four channel masks
        self.epoch = self._epoch()
        self.boot_count = (self.store.get("boots") or 0) + 1
        self.store.put("boots", self.boot_count)
        self.started_ms = self.clock.monotonic_ms()
        self.reboot_requested = False
        # The firmware service's boot-time part (agent.fwboot) finishes what a reboot interrupted
        # and confirms a trial boot; when nothing is pending it is not kept (loaded again by the
        # first fw.* request). A board with no boot state, no slots and no activation record
        # runs the built-in version and has nothing to finish: it is not loaded at all.
        self.firmware = None
        self.version = VERSION
        if self._fw_files():
            self.version = self.fw().version
            self._settle_fw()
        self._restore_config(issued)
        self._restore_duty()

    def _epoch(self):
        # Random at the first boot on this storage: with the EUI it names this outbox's seq
        # space, so a host never mistakes a wiped or re-provisioned device's seqs for old ones.
        epoch = self.store.get("epoch")
        if not epoch:
            try:
                from os import urandom

                raw = urandom(4)
            except ImportError:
                import random

                raw = random.getrandbits(32).to_bytes(4, "big")
            epoch = hexstr(raw)
            self.store.put("epoch", epoch)
        return epoch

    # -- alerts ------------------------------------------------------------------------------
    def raise_alerts(self, pairs):
        for code, payload in pairs:
            kind, data = alerts.n54(self.eui, code, payload)
            self.outbox.append(kind, data)

    # -- configuration -----------------------------------------------------------------------
    # Exactly once across power cuts: the configuration's record {"cfg": mapping, "seq": s} names
    # the seq its announcement (8F2A) takes, and is written before the announcement is appended
    # with nothing appended in between, so the announcement has been made if and only if the
    # outbox has issued seq s (whether the event is still pending, acknowledged since, or
    # refused and counted by a full outbox). The outbox never reuses a seq and keeps the highest
    # it issued on the flash, so a boot knows: next_seq > s, announced; otherwise the boot
    # announces it. One record write and one outbox append, each atomic: a power cut anywhere
    # leaves the configuration in force announced exactly once, and a configuration whose
    # record was not written is neither in force nor announced.
    # {"cfg", "announced": False} (and records of earlier versions, {"cfg", "announced": bool})
    # means: announce at the next boot.
    def _restore_config(self, issued):
        # issued: the outbox's next seq when this boot began, before anything was raised
        rec = self.store.get("subghz")
        if not rec:
            return
        applied = validate(rec.get("cfg"))[3]
        if applied is None:
            return  # a stored config that no longer validates is ignored (and reported by status)
        seq = rec.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            announce = seq >= issued
        else:  # seq 0 is never issued: _announce names the seq it takes first
            seq, announce = 0, not rec.get("announced")
        self._apply(applied, seq if announce else None)

    def _apply(self, applied, seq=None):
        # seq: announce the configuration under this seq (its record names it), None: do not
        now = self.clock.monotonic_ms()
        mapping, usable, params, masks = applied
        self.config = mapping
        self._masks = masks
        self.duty.set_thresholds(params["NormalLimitedDutyCycleThreshold"], params["LimitedCriticalDutyCycleThreshold"])
        moved = self.agility.configure(usable, params, now)  # (alerts raised below, after 8F2A)
        self._save_agility()
        if seq is not None:
            self._announce(mapping, seq)
        self.raise_alerts(moved)

    def _announce(self, mapping, seq):
        outbox = self.outbox
        if seq != outbox.next_seq:
            # at boot: something was raised first, or the record is of the older form; the record
            # names the seq the announcement really takes, before it is appended
            seq = outbox.next_seq
            self.store.put("subghz", {"cfg": mapping, "seq": seq})
        try:
            self.raise_alerts([(codes.ALERT_CONFIG_CHANGED, mapping)])
        except Exception:
            # not appended, and the hub goes on (a power cut stops it): the next alert would take
            # the record's seq, so the record says "announce at the next boot" instead
            if outbox.next_seq == seq:
                try:
                    self.store.put("subghz", {"cfg": mapping, "announced": False})
                except Exception:
                    pass
            raise

    # -- duty cycle across reboots -----------------------------------------------------------
    # The last hour's airtime is kept in the store, so a reboot cannot reset the ledger and let a
    # one-hour window exceed the limit. It is written when the duty-cycle state changes and
    # whenever UNSAVED_MAX_US of airtime has not been written yet; ageing needs no writes (the
    # restore shifts buckets by the UTC time that passed). A power cut can lose at most
    # UNSAVED_MAX_US, so every boot charges that much to the current minute.
    def _restore_duty(self):
        now = self.clock.monotonic_ms()
        rec = self.store.get("duty")
        if rec and isinstance(rec.get("snap"), dict):
            elapsed_ms = (self.clock.utc() - rec.get("utc", 0)) * 1000
            self.duty.restore(rec["snap"], now, elapsed_ms)
        self.duty.ledger.record(now, UNSAVED_MAX_US)
        self._duty_state = self.duty.state

    def _save_duty(self, now):
        self.store.put("duty", {"utc": self.clock.utc(), "snap": self.duty.snapshot(now)})
        self._unsaved_us = 0
        self._duty_state = self.duty.state

    def _save_agility(self):
        self.store.put("agility", self.agility.state())

    # -- radio -------------------------------------------------------------------------------
    def transmit(self, frame, essential=False, device=None, request_id=None, cra="Command"):
        """Send one frame if the duty cycle allows it; returns airtime in us, or 0 if refused."""
        now = self.clock.monotonic_ms()
        if self.agility.operating is None:
            return 0
        allowed, raised = self.duty.check(
            now, phy.airtime_us(len(frame)), essential=essential, device=device, request_id=request_id, cra=cra
        )
        self.raise_alerts(raised)
        if not allowed:
            return 0
        airtime = self.radio.transmit(frame)
        self.raise_alerts(self.duty.record(now, airtime, device=device))
        self._unsaved_us += airtime
        if self._unsaved_us >= UNSAVED_MAX_US or self.duty.state != self._duty_state:
            self._save_duty(now)
        return airtime

    def tick(self):
        now = self.clock.monotonic_ms()
        self.raise_alerts(self.duty.update(now))
        if self.duty.state != self._duty_state:
            self._save_duty(now)
        if self.firmware is not None:
            self.firmware.tick(now)
        if self.config is not None:
            before = self.agility.state()
            self.raise_alerts(self.agility.tick(now))
            if self.agility.state() != before:
                self._save_agility()

    # -- requests ----------------------------------------------------------------------------
    def handle(self, req):
        """A checked request message -> (rc, data, err)."""
        op = req.get("op")
        fn = _OPS.get(op)
        if fn is None and op not in FW_OPS:
            return RC_UNKNOWN_OP, None, "unknown operation {!r}".format(op)
        args = req.get("a") or {}
        if not isinstance(args, dict):
            return RC_BAD_ARGS, None, "arguments must be a map"
        try:
            if fn is None:
                try:
                    return self.fw().updater().handle(op, args)
                finally:
                    self._settle_fw()
            return fn(self, args)
        except BadArgs as e:
            return RC_BAD_ARGS, None, str(e)

    def _settle_fw(self):
        # once nothing is pending (agent.fwboot's idle()), the firmware service's code is unloaded
        fw = self.firmware
        if fw is not None and fw.idle():
            self.firmware = None
            from agent.fwboot import unload_all

            unload_all()

    def _fw_files(self):
        # Whether the firmware service has anything to read at boot: an activation record, or
        # beside the storage directory the bootloader's state or the slots (agent/boot.py).
        if self.store.get("fw.act") is not None:
            return True
        storage = self.hal.storage
        fs = getattr(storage, "fs", None)
        if fs is None:
            return False
        root = getattr(storage, "root", "")
        root = root[: root.rfind("/") + 1]
        return fs.exists(root + "fwboot.json") or fs.exists(root + "slots")

    def fw(self):
        """The firmware service (agent.fwboot), loaded if it is not."""
        fw = self.firmware
        if fw is None:
            from agent.fwboot import FirmwareService

            fw = self.firmware = FirmwareService(self)
        return fw

    def identity(self):
        return {
            "eui": format_eui(self.eui),
            "version": self.version,
            "board": getattr(self.board, "NAME", None),
            "band": getattr(self.radio, "band", None),
            "boot": self.boot_count,
            "epoch": self.epoch,
        }

    def op_hello(self, args):
        return RC_OK, self.identity(), None

    def op_status(self, args):
        now = self.clock.monotonic_ms()
        op = self.agility.operating
        data = self.identity()
        data.update(
            {
                "uptime_ms": now - self.started_ms,
                "configured": self.config is not None,
                "masks": ["{:08X}".format(m) for m in self._masks] if self._masks else None,
                "channel": {"page": op[0], "channel": op[1], "hz": phy.frequency_hz(op[0], op[1])} if op else None,
                "changes_left": self.agility.changes_left(),
                "duty": {"state": self.duty.state, "permille": self.duty.usage_permille(now)},
                "outbox": len(self.outbox),
                "store_corrupt": self.store.corrupt,  # records that failed their check
            }
        )
        return RC_OK, data, None

    def op_config_get(self, args):
        if self.config is None:
            return RC_OK, None, None
        return RC_OK, dict(self.config), None

    def op_config_set(self, args):
        mapping = _arg(args, "config", dict, required=True)
        region = _arg(args, "region", str)
        code, data, errors, applied = validate(mapping, region=region)
        if applied is None:
            return code, data, "; ".join("{}: {}".format(f, m) for f, m in errors)
        seq = self.outbox.next_seq
        self.store.put("subghz", {"cfg": applied[0], "seq": seq})  # see _restore_config
        self._apply(applied, seq)
        return RC_OK, data, None

    def op_channel(self, args):
        op = self.agility.operating
        if op is None:
            return RC_OK, None, None
        from agent.channels import encode_mask

        return RC_OK, {"page": op[0], "channel": op[1], "mask": "{:08X}".format(encode_mask(op[0], [op[1]]))}, None

    def op_scan(self, args):
        now = self.clock.monotonic_ms()
        self.raise_alerts(self.agility.request_scan(now, self.duty.state))
        self._save_agility()
        return RC_OK, {"channel": list(self.agility.operating) if self.agility.operating else None}, None

    def op_send(self, args):
        count = _arg(args, "count", int, 1)
        length = _arg(args, "len", int, 100)
        essential = _arg(args, "essential", bool, False)
        device = _arg(args, "device", str)
        request_id = _arg(args, "request_id", str)
        cra = _arg(args, "cra", str, "Command")
        if request_id is not None and request_id.count(":") != 2:
            raise BadArgs("request_id must be a DUIS RequestID (originator:target:counter)")
        if cra not in ("Command", "Response", "Alert"):
            raise BadArgs("cra must be Command, Response or Alert")
        if not 0 <= count <= 100000 or not 1 <= length <= 125:
            raise BadArgs("count must be 0-100000 and len 1-125")
        try:
            dev = parse_eui(device) if device else None
        except ValueError as e:
            raise BadArgs(str(e))
        sent = refused = airtime = 0
        frame = _FILLER[:length]
        for _ in range(count):
            a = self.transmit(frame, essential=essential, device=dev, request_id=request_id, cra=cra)
            if a:
                sent += 1
                airtime += a
            else:
                refused += 1
        return RC_OK, {"sent": sent, "refused": refused, "airtime_us": airtime, "duty": self.duty.state}, None

    def op_clock_advance(self, args):
        ms = _arg(args, "ms", int, required=True)
        if not hasattr(self.clock, "advance_ms"):
            return RC_UNKNOWN_OP, None, "this board's clock is real time"
        if not 0 <= ms <= _MAX_ADVANCE_MS:
            raise BadArgs("ms must be 0 to {} (31 days)".format(_MAX_ADVANCE_MS))
        self.clock.advance_ms(ms)
        self.tick()
        return RC_OK, {"monotonic_ms": self.clock.monotonic_ms()}, None

    def op_reboot(self, args):
        self.reboot_requested = True
        return RC_OK, None, None


# The operations: op -> Hub method; FW_OPS go to the firmware service (agent.firmware).
_OPS = {
    "hello": Hub.op_hello,
    "status": Hub.op_status,
    "config.get": Hub.op_config_get,
    "config.set": Hub.op_config_set,
    "channel": Hub.op_channel,
    "scan": Hub.op_scan,
    "send": Hub.op_send,
    "clock.advance": Hub.op_clock_advance,
    "reboot": Hub.op_reboot,
}
FW_OPS = ("fw.begin", "fw.chunk", "fw.end", "fw.activate", "fw.cancel", "fw.status")
Hub.ops = tuple(_OPS) + FW_OPS
