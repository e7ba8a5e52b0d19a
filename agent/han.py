# The hub's HAN: the devices it sees on its radio and what duty-cycle management does to them.
# Loaded when the first HAN frame is heard (agent/hub.py, Hub.tick) or a han.* request comes; a
# hub without devices never loads it. The frame format: hal/han_frame.py.
#
# The device table: EUI -> [type code, joined, last heard (ms), heard airtime this hour (us), its
# hour, MAC statistics last reported or None]. At most the board's HAN_CAPACITY devices join
# (default CAPACITY); a device asking past it is answered NO_CAPACITY and raises 8F2D with its
# EUI and type, once until a place frees. The joined devices are kept in the store ("han").
#
# What the hub answers: BEACON to a BEACON_REQ, JOIN_RSP to a JOIN_REQ, DATA (a reading from its
# mirror) to a REQUEST, ACK to an ACK_ME, SUSPEND (the minutes left) to a SUSPEND_Q; to a POLL
# what it holds for that sleepy device. Every frame it sends for a device goes through
# Hub.transmit with that device's EUI, so the duty-cycle ledger attributes the airtime to it.
#
# Duty-cycle management acting on devices (agent/dutycycle.py raises the alerts):
#   Limited    the device with the most airtime this hour is sent SuspendZCLMessages; 8F20 names
#              it (if the ledger holds no device's airtime, the device heard most this hour).
#   Critical   SuspendZCLMessages to every device by broadcast (essential traffic only).
#   Regulated  nothing is sent; messages that can wait (no DUIS RequestID) are kept for later.
#   A DCC command (a push with a RequestID) that cannot be sent is discarded with 8F2C (its
#   RequestID and CRA flag). Falling below critical (8F23) the broadcast suspension is lifted;
#   below limited (8F21) the suspended device is released (SuspendZCLMessages, 0 minutes).
# Frequency agility's inputs (the methods agent/agility.py's Agility offers; one it lacks is not
# called): each push the hub sends asks for an ACK; an ACK, or none within ACK_WAIT_MS, goes to
# note_delivery. A non-GSME device's MAC statistics go to poor_comms; the GSME's joining (with its
# wake period), every frame heard from it and its leaving go to gsme_joined, gsme_heard and
# gsme_left; when it polls, the attributes and flags set for it (attributes(): EnergyScanPending,
# ChannelChangePending, ChannelChange) are sent to it in ATTR frames and noted read (gsme_read).
from agent.codes import ALERT_NO_CAPACITY
from agent.eui import format_eui, parse_eui
from hal import han_frame as hf
from hal.compat import const

CAPACITY = const(16)
SUSPEND_MIN = const(10)  # minutes of each SuspendZCLMessages; renewed when the device asks
ACK_WAIT_MS = const(5000)
_DRAIN = const(32)  # frames taken from the radio at one tick at most
_HELD = const(8)  # messages held for one device at most
_REFUSED = const(8)
_HOUR_MS = const(3600000)
_RESPONSE = b"\x00" * 100  # the hub's answer to a request: a reading from its mirror
_LEVELS = ("normal", "limited", "critical", "regulated")


class Han:
    def __init__(self, hub):
        self.hub = hub
        self.capacity = getattr(hub.board, "HAN_CAPACITY", CAPACITY)
        self.table = {}
        for eui, code in hub.store.get("han") or ():
            self.table[bytes(eui)] = [code, True, None, 0, 0, None]
        self.refused = []  # EUIs whose 8F2D was raised
        self.held = {}  # eui -> [[body, request_id, cra, essential], ...] waiting to be sent
        self.awaiting = {}  # seq -> (eui, sent ms): pushes waiting for their ACK
        self.suspended = None  # the device suspended for Limited
        self._unicast = False  # its SuspendZCLMessages went out
        self._broadcast = False  # the Critical broadcast went out
        self.seq = 0
        self.heard = 0
        hub.duty.fallback = self.loudest

    # -- the radio ---------------------------------------------------------------------------
    def tick(self, now, first=None):
        if first is not None:
            self.on_frame(first, now)
        radio = self.hub.radio
        for _ in range(_DRAIN):
            frame = radio.receive(0)
            if frame is None:
                break
            self.on_frame(frame, now)
        if self.awaiting:
            for seq in [s for s, v in self.awaiting.items() if now - v[1] >= ACK_WAIT_MS]:
                del self.awaiting[seq]
                self.hub.agility.note_delivery(False)
        self.follow()
        if self.held and self.hub.duty.state != "regulated":
            # what could wait goes when it can (a sleepy device's waits for its POLL)
            for eui in [e for e in self.held if self.table.get(e, (2,))[0] != 2]:
                self._release_held(eui)

    def on_frame(self, frame, now):
        f = hf.decode(frame)
        if f is None:
            return
        kind, seq, src, _dst, p = f
        self.heard += 1
        row = self.table.get(src)
        if row is not None:
            if row[0] == 2:
                self._ag("gsme_heard", now)
            row[2] = now
            hour = now // _HOUR_MS
            if row[4] != hour:
                row[3] = 0
                row[4] = hour
            row[3] += _airtime(len(frame))
        if kind == hf.BEACON_REQ:
            self.send(hf.BEACON, src, b"", essential=True)
        elif kind == hf.JOIN_REQ:
            self._join(src, p[0] if p else 0, hf.get_u16(p, 1) if len(p) >= 3 else 0, now)
        elif row is None:
            return  # not of this network
        elif kind == hf.DATA and p:
            essential = bool(p[0] & hf.ESSENTIAL)
            if p[0] & hf.REQUEST:
                self.send(hf.DATA, src, bytes((p[0] & hf.ESSENTIAL,)) + _RESPONSE, essential)
            elif p[0] & hf.ACK_ME:
                self.send(hf.ACK, src, bytes((seq,)), essential)
        elif kind == hf.ACK and p:
            if self.awaiting.pop(p[0], None) is not None:
                self.hub.agility.note_delivery(True)
        elif kind == hf.POLL:
            self._release_held(src)
            if row[0] == 2:
                self._attributes(src, now)
        elif kind == hf.SUSPEND_Q:
            self.send(hf.SUSPEND, src, hf.u16(SUSPEND_MIN if self.is_suspended(src) else 0), True)
        elif kind == hf.STATS:
            try:
                row[5] = hf.parse_stats(p)
            except ValueError:
                return
            if row[0] != 2:
                _page, _ch, total, failures, retries, _minutes = row[5]
                self._ag("poor_comms", src, total, failures, retries, 1, now)
        elif kind == hf.LEAVE:
            if row[0] == 2:
                self._ag("gsme_left")
            self.forget(src)

    def _join(self, eui, code, wake_s, now):
        if eui in self.table:
            self.table[eui][1] = True
            if self.table[eui][0] == 2:
                self._ag("gsme_joined", eui, wake_s, now)
        elif len(self.table) >= self.capacity:
            if eui not in self.refused:
                self.refused.append(eui)
                if len(self.refused) > _REFUSED:
                    self.refused.pop(0)
                t = hf.TYPES[code] if 0 < code < len(hf.TYPES) else None
                self.hub.raise_alerts([(ALERT_NO_CAPACITY, {"DeviceID": format_eui(eui), "DeviceType": t})])
            self.send(hf.JOIN_RSP, eui, bytes((hf.NO_CAPACITY,)), essential=True)
            return
        else:
            self.table[eui] = [code, True, now, 0, now // _HOUR_MS, None]
            self._save()
            if code == 2:
                self._ag("gsme_joined", eui, wake_s, now)
        self.send(hf.JOIN_RSP, eui, bytes((hf.JOINED,)), essential=True)

    # -- frequency agility's inputs (agent/agility.py: those its Agility offers) ------------
    def _ag(self, name, *args):
        ag = self.hub.agility
        fn = getattr(ag, name, None)
        if fn is None:
            return
        before = ag.state()
        raised = fn(*args)
        if raised:
            self.hub.raise_alerts(raised)
        if ag.state() != before:
            self.hub.store.put("agility", ag.state())

    def _attributes(self, gsme, now):
        # the GSME polled: the Sub-GHz attributes and flags set for it, each sent and so read
        get = getattr(self.hub.agility, "attributes", None)
        attrs = get() if get is not None else None
        if not attrs:
            return
        for code in (hf.ATTR_SCAN_PENDING, hf.ATTR_CHANGE_PENDING, hf.ATTR_CHANNEL_CHANGE):
            name = hf.ATTR_NAMES[code]
            v = attrs.get(name)
            if v and self.send(hf.ATTR, gsme, bytes((code,)) + hf.u32(int(v)), True):
                self._ag("gsme_read", name, now)

    def forget(self, eui):
        if self.table.pop(eui, None) is not None:
            self.held.pop(eui, None)
            self.refused = []  # a place is free: a refused device is reported again
            self._save()
            return True
        return False

    def _save(self):
        self.hub.store.put("han", [[eui, row[0]] for eui, row in self.table.items()])

    def send(self, kind, dst, payload, essential=False, request_id=None, cra="Command", attribute=True):
        """One frame to dst through the duty cycle; its airtime (0: not sent)."""
        self.seq = (self.seq + 1) & 0xFF
        frame = hf.encode(kind, self.seq, self.hub.eui, dst, payload)
        device = dst if attribute and dst != hf.BROADCAST else None
        return self.hub.transmit(frame, essential=essential, device=device, request_id=request_id, cra=cra)

    # -- pushes: commands, tariffs, firmware blocks down -------------------------------------
    def push(self, eui, length, essential, request_id, cra):
        """A message for a joined device: sent now (a sleepy one's when it polls). 'sent',
        'held' (it can wait: no RequestID) or 'discarded' (8F2C raised)."""
        body = [b"\x00" * length, request_id, cra, essential]
        if self.table[eui][0] == 2:  # GSME: sleepy
            q = self.held.setdefault(eui, [])
            if len(q) >= _HELD:
                raise ValueError("{} messages already wait for this device".format(_HELD))
            q.append(body)
            return "held"
        return self._push(eui, body)

    def _push(self, eui, body):
        payload = bytes(((hf.ESSENTIAL if body[3] else 0) | hf.ACK_ME,)) + body[0]
        if self.send(hf.DATA, eui, payload, body[3], body[1], body[2]):
            self.awaiting[self.seq] = (eui, self.hub.clock.monotonic_ms())
            return "sent"
        if body[1] is not None:
            return "discarded"  # the duty cycle raised 8F2C with its RequestID
        q = self.held.setdefault(eui, [])
        if body not in q:
            if len(q) >= _HELD:
                q.pop(0)
            q.append(body)
        return "held"

    def _release_held(self, eui):
        q = self.held.pop(eui, None)
        while q:
            if self._push(eui, q.pop(0)) == "held":
                break  # the rest wait too (kept by _push)

    # -- duty-cycle management ---------------------------------------------------------------
    def loudest(self):
        """The device heard most this hour (DutyCycle.fallback), or None."""
        hour = self.hub.clock.monotonic_ms() // _HOUR_MS
        best, best_us = None, 0
        for eui, row in self.table.items():
            if row[4] == hour and row[3] > best_us:
                best, best_us = eui, row[3]
        return best

    def is_suspended(self, eui):
        return self._broadcast or (eui == self.suspended and self._unicast)

    def follow(self):
        """Act on the devices as the duty-cycle state requires (suspend, release)."""
        duty = self.hub.duty
        for _ in range(3):
            level = _LEVELS.index(duty.state)
            if level < 2 and self._broadcast:
                if not self.send(hf.SUSPEND, hf.BROADCAST, hf.u16(0), True):
                    return
                self._broadcast = False
                self._unicast = False  # the broadcast released it too
            if level < 1 and self.suspended is not None:
                if self._unicast:
                    self.send(hf.SUSPEND, self.suspended, hf.u16(0), True, attribute=False)
                self.suspended = None
                self._unicast = False
            if level >= 1 and self.suspended is None:
                self.suspended = duty.suspended
            if level >= 1 and self.suspended is not None and not self._unicast and not self._broadcast:
                self._unicast = bool(self.send(hf.SUSPEND, self.suspended, hf.u16(SUSPEND_MIN), True, attribute=False))
            if level >= 2 and not self._broadcast:
                self._broadcast = bool(self.send(hf.SUSPEND, hf.BROADCAST, hf.u16(SUSPEND_MIN), True))
            if _LEVELS.index(duty.state) == level:
                return

    # -- the table as the host sees it -------------------------------------------------------
    def rows(self, now):
        hour = now // _HOUR_MS
        out = []
        for eui, row in self.table.items():
            out.append(
                {
                    "eui": format_eui(eui),
                    "type": hf.TYPES[row[0]] if 0 < row[0] < len(hf.TYPES) else "?",
                    "joined": row[1],
                    "suspended": self.is_suspended(eui),
                    "airtime_us": self.hub.duty.ledger.device_us(now, eui),
                    "heard_us": row[3] if row[4] == hour else 0,
                    "last_heard_s": None if row[2] is None else (now - row[2]) // 1000,
                    "held": len(self.held.get(eui, ())),
                    "mac": list(row[5][2:]) if row[5] else None,
                }
            )
        return out


def _airtime(n):
    from hal.phy import airtime_us

    return airtime_us(min(n, 125))


def han_of(hub):
    """The hub's HAN, made if it has none yet."""
    if hub.han is None:
        hub.han = Han(hub)
    return hub.han


def eui_arg(args, name="eui"):
    v = args.get(name)
    if not isinstance(v, str):
        raise ValueError("{} must be an EUI-64 (XX-XX-XX-XX-XX-XX-XX-XX)".format(name))
    return parse_eui(v)
