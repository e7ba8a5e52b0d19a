# Frequency agility: which allowed channel the hub operates on, and when it moves.
#
# GBCS 10.6.2.8 (the CHF's frequency agility rules) is not available to this project, so this is
# our own model of the configuration items, chosen to be simple, bounded and testable:
#
# - Selection: a scan measures the energy (dBm) of every allowed channel the radio can tune and
#   picks the quietest; ties go to the lowest page, then the lowest channel. The energy measured
#   at selection is the channel's baseline.
# - Every LocalCHNoiseMeasurementPeriod seconds the operating channel is measured again. It is
#   "noisier" when it has risen ChannelNoisierThreshold dB or more above its baseline (0 disables
#   the check). Delivery statistics reported by the HAN side (note_delivery) are checked over the
#   same period: a failure share of LocalCHFailurePercentage or more, or a retry share of
#   LocalCHRetryPercentage or more, is a problem too. Either starts a scan (8F27) whose trigger
#   is CHDetectedMessageFailureProblems or CHDetectedMessageRetryProblems (a rise in noise shows
#   first as retries, so energy alone reports retry problems).
# - A scan moves the hub only to a channel at least ChannelQuieterThreshold dB quieter than the
#   operating channel measures now, and only while fewer than MaximumSubGHzChannelChangesPerWeek
#   changes happened in the last 7 days (rolling); a warranted move refused by that budget raises
#   8F2B, once for the episode: no new scan until the problem clears or a change is possible.
#   A move raises 8F26 with the new operating channel and the trigger.
# - A scan requested by the DCC (SRV 6.29) raises 8F28 with its assessment (ScanRequestAccepted,
#   or DutyCycleUsageIsTooHigh when the duty cycle is not normal) and the trigger
#   RemotePartyCommand; an accepted request then scans as above.
# - A new configuration that no longer allows the operating channel forces a move (no budget
#   applies: the hub may not stay on a forbidden channel); the first selection after a
#   configuration is applied uses the trigger SMHANFormation.
# Triggers and scan assessments are the DUIS enumeration values, written out where they are used.
from agent import codes
from hal.compat import const

_WEEK_S = const(7 * 24 * 3600)


class Agility:
    def __init__(self, radio, clock, state=None):
        self.radio = radio
        self.clock = clock
        self.config = None
        self.channels = []  # allowed and tunable (page, channel), plan order
        st = state or {}
        op = st.get("op")
        self.operating = (op[0], op[1]) if op else None
        self.baseline = st.get("base")
        # UTC seconds of recent changes: monotonic time starts again at every boot, UTC does not
        self.changes = list(st.get("changes", ()))
        self.next_check_ms = None
        self._held = False  # a move is warranted but the weekly budget refused it (8F2B raised)
        self._sent = 0
        self._failed = 0
        self._retries = 0

    def state(self):
        """What must survive a reboot (the caller persists it)."""
        return {
            "op": list(self.operating) if self.operating else None,
            "base": self.baseline,
            "changes": list(self.changes),
        }

    # -- configuration ---------------------------------------------------------------------
    def configure(self, usable, params, now_ms):
        """Apply a validated configuration: its usable (page, channel) pairs in plan order and its
        scaled parameters keyed by DUIS name (SubGhzConfig.usable_channels() and .params). Returns
        alerts."""
        self.config = params
        self.channels = [pc for pc in usable if self.radio.can_tune(pc[0], pc[1])]
        self.next_check_ms = now_ms + self._period_ms()
        if self.operating in self.channels:
            self._retune()  # after a reboot the radio starts untuned
            return []
        if not self.channels:
            self.operating = None
            return []
        return self._scan(now_ms, "SMHANFormation", forced=True)

    def _period_ms(self):
        return self.config.get("LocalCHNoiseMeasurementPeriod") * 1000

    # -- HAN statistics ----------------------------------------------------------------------
    def note_delivery(self, ok, retries=0):
        self._sent += 1
        if not ok:
            self._failed += 1
        self._retries += retries

    # -- periodic check ----------------------------------------------------------------------
    def tick(self, now_ms):
        """Run the periodic check when it is due; returns alerts."""
        if self.config is None or self.next_check_ms is None or now_ms < self.next_check_ms:
            return []
        self.next_check_ms = now_ms + self._period_ms()
        trigger = self._problem()
        self._sent = self._failed = self._retries = 0
        if trigger is None:
            self._held = False  # the episode is over
            return []
        if self._held and not self.changes_left():
            return []  # 8F2B was raised for this episode: say it again only once a change is possible
        alerts = self._scan(now_ms, trigger)
        self._held = alerts[-1][0] == codes.ALERT_CHANNEL_NOT_CHANGED
        return alerts

    def _problem(self):
        if self.operating is None:
            return None
        if self._sent:
            # percentages are kept in hundredths: 40.00 % -> 4000
            if self._failed * 10000 >= self.config.get("LocalCHFailurePercentage") * self._sent:
                return "CHDetectedMessageFailureProblems"
            if self._retries * 10000 >= self.config.get("LocalCHRetryPercentage") * self._sent:
                return "CHDetectedMessageRetryProblems"
        noisier = self.config.get("ChannelNoisierThreshold")
        if noisier and self.baseline is not None:
            now = self.radio.energy(self.operating[0], self.operating[1])
            if now - self.baseline >= noisier:
                return "CHDetectedMessageRetryProblems"
        return None

    # -- scans -------------------------------------------------------------------------------
    def request_scan(self, now_ms, duty="normal"):
        """A DCC request (SRV 6.29) while the duty cycle is in state `duty`; returns alerts (8F28
        first)."""
        trigger = "RemotePartyCommand"
        if duty != "normal":
            return [(codes.ALERT_SCAN_OUTCOME, {"status": "DutyCycleUsageIsTooHigh", "trigger": trigger})]
        alerts = [(codes.ALERT_SCAN_OUTCOME, {"status": "ScanRequestAccepted", "trigger": trigger})]
        return alerts + self._scan(now_ms, trigger)

    def _scan(self, now_ms, trigger, forced=False):
        alerts = [(codes.ALERT_SCAN_INITIATED, None)]
        if not self.channels:
            return alerts
        best, best_e = None, None
        energies = {}
        for pc in self.channels:
            e = self.radio.energy(pc[0], pc[1])
            energies[pc] = e
            if best_e is None or e < best_e:
                best, best_e = pc, e
        if not forced:
            current_e = energies.get(self.operating)
            if current_e is None or best == self.operating:
                self._retune()
                return alerts
            if current_e - best_e < self.config.get("ChannelQuieterThreshold"):
                self._retune()
                return alerts
            utc = self.clock.utc()
            self.changes = [t for t in self.changes if utc - t < _WEEK_S]
            if len(self.changes) >= self.config.get("MaximumSubGHzChannelChangesPerWeek"):
                self._retune()
                alerts.append((codes.ALERT_CHANNEL_NOT_CHANGED, None))
                return alerts
            self.changes.append(utc)
        self.operating = best
        self.baseline = best_e
        self._retune()
        alerts.append((codes.ALERT_CHANNEL_CHANGED, {"page": best[0], "channel": best[1], "trigger": trigger}))
        return alerts

    def _retune(self):
        if self.operating is not None:
            self.radio.tune(self.operating[0], self.operating[1])

    def changes_left(self):
        if self.config is None:
            return 0
        utc = self.clock.utc()
        recent = [t for t in self.changes if utc - t < _WEEK_S]
        return max(0, self.config.get("MaximumSubGHzChannelChangesPerWeek") - len(recent))
