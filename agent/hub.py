# The hub: wires the domain services to a HAL and answers requests. One request in, exactly one
# response out, always with a response code; bad input never raises out of handle().
# (Over 400 lines: the request handlers and the restores at boot share the state they keep.)
#
# Agent protocol codes (requests that are not DUIS service requests still get DUIS codes):
#   I0   done;  E13  unknown operation (the request type is not valid here);
#   E49  the request's arguments do not have the operation's format, or the board had no memory
#        for the request (agent/server.py);
#   E0628xx  from configuration validation (agent/subghz.py).
#
# The validator (agent/subghz.py, with agent/channels.py) is loaded for one configuration and
# unloaded after it. The hub keeps the validated configuration in its compact form only: the
# four channel masks and the scaled parameters (what the duty cycle and frequency agility use);
# its DUIS mapping (config.get, the 8F2A payload) is made from them when it is asked for.
from agent import VERSION, alerts, codes
from agent.agility import Agility
from agent.dutycycle import DutyCycle
from agent.eui import format_eui, parse_eui
from agent.outbox import Outbox
from agent.store import Store
from hal import phy
from hal.compat import collect, hexstr, unload, urandom
from hal.contracts import PowerCut

RC_OK = codes.SUCCESS
RC_UNKNOWN_OP = "E13"
RC_BAD_ARGS = "E49"

OUTBOX_CAPACITY = 64
_MAX_ADVANCE_MS = 31 * 24 * 3600 * 1000
UNSAVED_MAX_US = 1000000  # airtime a power cut may lose from the duty-cycle record
_FILLER = b"\x55" * 125
_CFG = "subghz"  # the configuration's record
_FAILED = "subghz.f"  # the kind of the last restore failure reported upward (see _restore_failed)
# the parameters the hub and frequency agility compute with: a stored configuration must have them
_USED = (
    "NormalLimitedDutyCycleThreshold",
    "LimitedCriticalDutyCycleThreshold",
    "MaximumSubGHzChannelChangesPerWeek",
    "ChannelQuieterThreshold",
    "ChannelNoisierThreshold",
    "LocalCHNoiseMeasurementPeriod",
    "LocalCHFailurePercentage",
    "LocalCHRetryPercentage",
)


class BadArgs(ValueError):
    pass


def _unload_validator():
    unload("agent.subghz")
    unload("agent.channels")
    collect()  # its code is garbage: given back before the hub allocates what it keeps


def validate(mapping, region=None):
    # agent.subghz.validate() with its code unloaded after: (code, as_dict, errors, applied),
    # applied = (DUIS mapping, usable channels, scaled parameters, masks) when the code is I0.
    # mapping may come in a list that holds nothing else, which is emptied: the mapping asked
    # for is then garbage once validated, and its room goes to the mapping made of it (on a
    # small heap, the two together are what config.set runs out of).
    from agent import subghz

    if isinstance(mapping, list):
        mapping = mapping.pop()
    try:
        r = subghz.validate(mapping, region=region)
        mapping = None
        c = r.config
        applied = (c.to_mapping(), c.usable_channels(), dict(c.params), c.masks()) if c else None
        return r.code, r.as_dict(), r.errors, applied
    finally:
        subghz = r = c = None
        _unload_validator()


def stored_config(rec):
    # A stored configuration record -> (usable channels, scaled parameters, masks), checked from
    # its compact form without the validator: the masks must make a configuration
    # (channels.configured_channels) and the parameters be the eleven scaled ints, with the ones
    # the hub computes with present and in the order they need. A record is written only from a
    # validated configuration and carries its CRC (agent/store.py), so its DUIS ranges are not
    # checked again. A record of an earlier version ({"cfg": DUIS mapping}) is validated in full.
    # ValueError (a ChannelError is one) says what is wrong.
    if not isinstance(rec, dict):
        raise ValueError("not a configuration record")
    masks = rec.get("m")
    if masks is None and "cfg" in rec:
        code, _data, errors, applied = validate(rec.get("cfg"))
        if applied is None:
            raise ValueError("no longer valid: {} {}".format(code, errors[0] if errors else ""))
        return applied[1], applied[2], applied[3]
    params = rec.get("p")
    if not isinstance(params, dict) or len(params) != 11:
        raise ValueError("expected the eleven parameters")
    for name in params:
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
            raise ValueError("parameter {} is {!r}".format(name, v))
    for name in _USED:
        if name not in params:
            raise ValueError("parameter {} is missing".format(name))
    if not 0 < params[_USED[0]] < params[_USED[1]] or not params["LocalCHNoiseMeasurementPeriod"]:
        raise ValueError("parameters out of order")
    from agent.channels import configured_channels

    try:
        usable = configured_channels(masks)
    finally:
        configured_channels = None
        unload("agent.channels")
    return usable, params, list(masks)


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
        self.outbox = Outbox(hal.storage, OUTBOX_CAPACITY, utc=hal.clock.utc)
        issued = self.outbox.next_seq  # before this boot raises anything (see _restore_config)
        regulated = getattr(board, "REGULATED_DUTY_CYCLE_PERMILLE", 25)
        self.duty = DutyCycle(regulated=regulated)
        self._default_thresholds = (self.duty.normal_limited, self.duty.limited_critical)
        self._unsaved_us = 0  # airtime recorded since the duty-cycle record was last written
        self._duty_state = None  # the state that record holds
        self.agility = Agility(self.radio, self.clock, self.store.get("agility"), self.duty)
        self.han = None  # the devices on the radio (agent.han), loaded when the first one speaks
        self._masks = None  # the configuration in force: its four channel masks
        self._params = None  # and its scaled parameters (None: not configured)
        self.config_restore = None  # why the stored configuration was not restored at this boot
        self.epoch = self._epoch()
        self.boot_count = (self.store.get("boots") or 0) + 1
        self.store.put("boots", self.boot_count)
        self.started_ms = self.clock.monotonic_ms()
        self.reboot_requested = False
        # The firmware service's boot-time part (agent.fw_service) finishes what a reboot interrupted
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
            epoch = hexstr(urandom(4))
            self.store.put("epoch", epoch)
        return epoch

    # -- alerts ------------------------------------------------------------------------------
    def raise_alerts(self, pairs):
        for code, payload in pairs:
            kind, data = alerts.n54(self.eui, code, payload)
            self.outbox.append(kind, data)

    # -- configuration -----------------------------------------------------------------------
    # Exactly once across power cuts: the configuration's record {"m": masks, "p": parameters,
    # "seq": s} names the seq its announcement (8F2A) takes, and is written before the
    # announcement is appended with nothing appended in between, so the announcement has been
    # made if and only if the outbox has issued seq s (whether the event is still pending,
    # acknowledged since, or refused and counted by a full outbox). The outbox never reuses a seq
    # and keeps the highest it issued on the flash, so a boot knows: next_seq > s, announced;
    # otherwise the boot announces it. One record write and one outbox append, each atomic: a
    # power cut anywhere leaves the configuration in force announced exactly once, and a
    # configuration whose record was not written is neither in force nor announced.
    # {"m", "p", "announced": False} (and records of earlier versions, {"cfg": DUIS mapping,
    # "seq": s} or {"cfg", "announced": bool}) means: announce at the next boot.
    #
    # Boot never depends on the configuration: a record that cannot be restored (damaged, not a
    # configuration, no memory left to check it, anything) leaves the hub serving unconfigured,
    # in the state it has before any configuration (no operating channel: it transmits nothing),
    # with the reason in status ("config_restore") and, once for each kind of failure until a
    # configuration is restored or set again, an agent event "restore" upward (agent/alerts.py).
    # The record stays as it is: a boot with more memory, or a config.set, replaces it.
    def _restore_config(self, issued):
        # issued: the outbox's next seq when this boot began, before anything was raised
        store = self.store
        damaged = store.corrupt
        try:
            rec = store.get(_CFG)
            if rec is None:
                if store.corrupt != damaged:
                    raise ValueError("damaged record")
                return
            applied = stored_config(rec)
            seq = rec.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                announce = seq >= issued
            else:  # seq 0 is never issued: _announce names the seq it takes first
                seq, announce = 0, not rec.get("announced")
            legacy = "m" not in rec
            rec = None
            moved = self._configure(applied)
            if legacy and not announce:  # the compact form from now on (the same meaning)
                store.put(_CFG, self._record(seq))
        except Exception as e:
            if isinstance(e, PowerCut):
                raise
            self._unconfigure()
            why = "{}: {}".format("out of memory" if isinstance(e, MemoryError) else "not usable", e)
            e = rec = None
            collect()  # what the failed restore left: given back before the hub goes on
            self._restore_failed(why)
            return
        applied = None
        try:
            if store.get(_FAILED) is not None:
                store.delete(_FAILED)  # restored: a later failure is reported again
            if announce:
                self._announce(seq)
        except Exception as e:
            if isinstance(e, PowerCut):
                raise
            # the configuration is in force; its announcement waits for the next boot (_announce)
        self.raise_alerts(moved)

    def _restore_failed(self, why):
        self.config_restore = why
        kind = why[: why.find(":")]  # "out of memory" or "not usable"
        try:
            if self.store.get(_FAILED) != kind:
                # appended before the kind is noted: a power cut between may report it twice,
                # never not at all
                self.outbox.append(alerts.RESTORE, alerts.restore(self.eui, why))
                self.store.put(_FAILED, kind)
        except Exception as e:
            if isinstance(e, PowerCut):
                raise
            # status still says why

    def _unconfigure(self):
        # the state before any configuration: no masks, no operating channel (transmit() sends
        # nothing), the duty-cycle thresholds the hub starts with
        self._masks = self._params = None
        ag = self.agility
        ag.config = None
        ag.channels = []
        ag.operating = None
        ag.next_check_ms = None
        self.duty.set_thresholds(*self._default_thresholds)

    def _record(self, seq=None):
        # the configuration's record: seq None means "announce at the next boot"
        rec = {"m": self._masks, "p": self._params}
        if seq is None:
            rec["announced"] = False
        else:
            rec["seq"] = seq
        return rec

    def _configure(self, applied):
        # applied = (usable channels, scaled parameters, masks); returns the channel alerts
        usable, params, masks = applied
        self._params = params
        self._masks = masks
        self.duty.set_thresholds(params["NormalLimitedDutyCycleThreshold"], params["LimitedCriticalDutyCycleThreshold"])
        moved = self.agility.configure(usable, params, self.clock.monotonic_ms())
        self._save_agility()
        return moved

    @property
    def config(self):
        # The configuration in force as DUIS items (config.get, the 8F2A payload), or None: made
        # from its masks and parameters by the validator's code, loaded for the moment.
        masks = self._masks
        if masks is None:
            return None
        from agent import subghz
        from agent.channels import decode_mask

        try:
            chans = {}
            for m in masks:
                page, chs = decode_mask(m)
                chans[page] = chs
            return subghz.SubGhzConfig(chans, self._params).to_mapping()
        finally:
            subghz = decode_mask = chans = None
            _unload_validator()

    def _announce(self, seq, mapping=None):
        # mapping: the configuration's DUIS items when the caller has them (config.set)
        outbox = self.outbox
        before = outbox.next_seq
        try:
            if mapping is None:
                mapping = self.config
            if seq != before:
                # at boot: something was raised first, or the record is of an older form; the
                # record names the seq the announcement really takes, before it is appended
                seq = before
                self.store.put(_CFG, self._record(seq))
            self.raise_alerts([(codes.ALERT_CONFIG_CHANGED, mapping)])
        except Exception:
            # not appended, and the hub goes on (a power cut stops it): the next alert would take
            # the record's seq, so the record says "announce at the next boot" instead
            if outbox.next_seq == before:
                try:
                    self.store.put(_CFG, self._record())
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
        # Send one frame if the duty cycle allows it; returns airtime in us, or 0 if refused.
        now = self.clock.monotonic_ms()
        if self.agility.operating is None or self._masks is None:
            return 0  # nothing to transmit on before a configuration is in force
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
        if self._masks is not None:
            self._hear(now)
            before = self.agility.state()
            self.raise_alerts(self.agility.tick(now))
            if self.agility.state() != before:
                self._save_agility()

    def _hear(self, now):
        # the HAN (agent.han) is loaded with the first frame of its format (0x48 first: hal/han_frame.py)
        frame = None if self.han else self.radio.receive(0)
        if self.han or frame and frame[0] == 0x48:
            from agent.han import han_of

            han_of(self).tick(now, frame)

    # -- requests ----------------------------------------------------------------------------
    def handle(self, req):
        # A checked request message -> (rc, data, err).
        op = req.get("op")
        fn = _OPS.get(op)
        han = fn is None and str(op)[:4] == "han."  # the HAN's requests: agent/han_ops.py
        if fn is None and op not in FW_OPS and not han:
            return RC_UNKNOWN_OP, None, "unknown operation {!r}".format(op)
        args = req.get("a") or {}
        if not isinstance(args, dict):
            return RC_BAD_ARGS, None, "arguments must be a map"
        try:
            if han:
                from agent.han_ops import handle

                return handle(self, op, args)
            if fn is None:
                try:
                    return self.fw().updater().handle(op, args)
                finally:
                    self._settle_fw()
            return fn(self, args)
        except BadArgs as e:
            return RC_BAD_ARGS, None, str(e)

    def _settle_fw(self):
        # once nothing is pending (agent.fw_service's idle()), the firmware service's code is unloaded
        fw = self.firmware
        if fw is not None and fw.idle():
            self.firmware = None
            from agent.fw_service import unload_all

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
        # The firmware service (agent.fw_service), loaded if it is not.
        fw = self.firmware
        if fw is None:
            from agent.fw_service import FirmwareService

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
                "radio": type(self.radio).__name__,  # what the hub transmits through: its driver's class
                "configured": self._masks is not None,
                "masks": ["{:08X}".format(m) for m in self._masks] if self._masks else None,
                "channel": {"page": op[0], "channel": op[1], "hz": phy.frequency_hz(op[0], op[1])} if op else None,
                "changes_left": self.agility.changes_left(),
                "duty": {"state": self.duty.state, "permille": self.duty.usage_permille(now)},
                "outbox": len(self.outbox),
                "store_corrupt": self.store.corrupt,  # records that failed their check
                "config_restore": self.config_restore,  # why the stored configuration is not in force
            }
        )
        return RC_OK, data, None

    def op_config_get(self, args):
        return RC_OK, self.config, None

    def op_config_set(self, args):
        _arg(args, "config", dict, required=True)
        region = _arg(args, "region", str)
        code, data, errors, applied = validate([args.pop("config")], region=region)
        if applied is None:
            return code, data, "; ".join("{}: {}".format(f, m) for f, m in errors)
        mapping, usable, params, masks = applied
        applied = None
        seq = self.outbox.next_seq
        self.store.put(_CFG, {"m": masks, "p": params, "seq": seq})  # see _restore_config
        self.config_restore = None  # a stored configuration that failed to restore is replaced
        moved = self._configure((usable, params, masks))
        usable = None
        self._announce(seq, mapping)
        mapping = None
        self.raise_alerts(moved)
        if self.store.get(_FAILED) is not None:
            self.store.delete(_FAILED)
        return RC_OK, data, None

    def op_channel(self, args):
        # the operating channel (None before the first selection); with {log: true} the channel
        # log too (DBCH02): {channel, changes: UTC seconds of the changes of the last 7 days}
        op = self.agility.operating
        d = None
        if op is not None:
            from agent.channels import encode_mask

            d = {"page": op[0], "channel": op[1], "mask": "{:08X}".format(encode_mask(op[0], [op[1]]))}
        if args.get("log"):
            d = {"channel": d, "changes": list(self.agility.changes)}
        return RC_OK, d, None

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
        world = getattr(getattr(self.hal, "medium", None), "han", None)
        if world is not None:  # a simulated HAN (hal/sim/han.py): its devices act as time passes
            world.advance(ms, self.tick)
        else:
            self.clock.advance_ms(ms)
            self.tick()
        return RC_OK, {"monotonic_ms": self.clock.monotonic_ms()}, None

    def op_reboot(self, args):
        self.reboot_requested = True
        return RC_OK, None, None


# The operations: op -> Hub method; FW_OPS go to the firmware service (agent.fw_staging).
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
Hub.ops = tuple(_OPS) + FW_OPS  # and agent.han_ops.OPS
