# Frequency agility: which allowed channel the hub operates on, when it moves, and how it takes
# the gas meter (GSME) along.
#
# GBCS v3.0 is not available to this project. This is our model, from public sources: Silicon
# Labs' Comms Hub Function Sub GHz component (it "implements the channel change sequence as
# outlined in section 10.6.2.8 of GBCS v3.0": docs.silabs.com/zigbee/latest/zigbee-af-api/
# comms-hub-function-sub-ghz), its Sub GHz client/server pages, the DUIS 5.4
# schema (the 8 ScanTrigger values and the 8 StatusCode values of 8F28) and the DCC's
# configuration items (../shared/DOMAIN.md sections 2 and 9). Where a rule is our reading, it says so.
#
# Inputs are method calls, so the HAN side (simulated devices, or a real stack) drives it:
#   gsme_joined(eui, wake_s, now)  the GSME is registered (mirror allocated), wakes every wake_s
#   gsme_heard(now)            the GSME polled the hub;   gsme_read(attr, now)  it read attribute attr
#   gsme_requests_scan(now)    the GSME asked for a scan (trigger GSMERequest)
#   poor_comms(eui, total, failures, retries, periods, now)  a non-GSME device's MAC statistics
#                              (Mgmt_NWK_Unsolicited_Enhanced_Update_notify)
#   note_delivery(ok, retries) one of the hub's own unicasts, delivered or failed, with its retries
#   set_busy(HHT|JOINING|GSME_OTA, on)  an HHT is connected, joining is permitted, a GSME OTA
#                              distribution is under way (what the assessment refuses for)
#   request_scan(now, duty)    a DCC request (SRV 6.29, trigger RemotePartyCommand)
#   tick(now)                  time passes: deadlines, the GSME's curfew, the measurement period
# Each returns the alerts raised, (code, payload) pairs; the hub persists state() when it changes.
#
# Scan requests and their assessment (8F28). Every request to scan, whatever its trigger, is
# assessed and the outcome raised as 8F28 {status, trigger}. Refusals, in this order (our reading
# of the StatusCode values): HHTConnected (an HHT is connected), DutyCycleUsageIsTooHigh (the duty
# cycle is not normal), JoiningIsCurrentlyPermitted, GSMEOTADistributionUnderway,
# TooManyCommandsToday (RemotePartyCommand only: 3 DCC requests accepted in the last 24 h, our
# figure), TooManyScansToday (12 scans in the last 24 h, our figure; agent/agility_scan.py),
# TooManyScansThisWeek (MaximumSubGHzChannelChangesPerWeek, item 7, changes in the last 7 days,
# rolling: a scan could only lead to a change the budget forbids). Otherwise ScanRequestAccepted.
# A refusal is raised once for its trigger and status, not again until another outcome comes
# between (every DCC request and every lost-GSME search is answered on its own). A
# configuration that no longer allows the operating channel, with a GSME registered, is a request
# (SMHANFormation) that is not refused: the hub may not stay on a forbidden channel. The first
# selection after a configuration with no GSME to take along is no request: the hub chooses at
# once, 8F27 then 8F26 (SMHANFormation), without 8F28, as it forms its HAN.
#
# Triggers (the DUIS ScanTrigger values):
# - RemotePartyCommand: request_scan().   GSMERequest: gsme_requests_scan().
# - SMHANFormation: a configuration forbids the operating channel while a GSME is registered
#   (and, with no 8F28, the first selection after a configuration).
# - CHDetectedMessageFailureProblems / CHDetectedMessageRetryProblems: every
#   LocalCHNoiseMeasurementPeriod (item 13) seconds the hub's own unicasts of the period are
#   judged: failures/total >= LocalCHFailurePercentage (item 14), else retries/total >=
#   LocalCHRetryPercentage (item 15). The operating channel's energy is measured too: a rise of
#   ChannelNoisierThreshold (item 10) dB or more over its baseline (the energy measured when it was
#   chosen; 0 disables it) counts as retry problems (a rise in noise shows first as retries).
# - SubGHzNon-GSMEDeviceRequest: a non-GSME device's reports are added up until they cover
#   NonGSMEPoorCommsMeasurementPeriods (item 12) of its measurement periods; then, if its failures
#   or its retries are NonGSMEPoorCommsPercentageThreshold (item 11) or more of its unicasts, the
#   hub is asked to scan (our reading of items 11-12), and the sums start again.
# - GSMEMissedItsCurfew: the GSME has not been heard for GSMECurfew (item 8, > 1) of its wake
#   periods (our reading of the unit: a count of wake periods, hence "> 1"). The hub starts a
#   lost-GSME search: a scan request with this trigger, then one more curfew to hear the GSME. A
#   search that ends unheard has failed and the next starts; the third failed search in a row
#   raises 8F29 once, and searching stops until the GSME is heard again.
# - GSMEMissingForTheLastDay: the GSME has not been heard for 24 h (once per absence).
# One episode, one scan: a problem of the periodic check that led to a scan with no change does
# not request again every period, only once it has cleared and come back; a refused one is
# assessed again each period (its 8F28 raised again only when the outcome changes).
#
# The channel change (Silicon Labs' CHF Sub GHz component, GBCS 10.6.2.8): once a scan is
# accepted, with a GSME registered and an operating channel to leave,
#   1. the EnergyScanPending functional notification flag is set;
#   2. wait until the GSME reads it (gsme_read("EnergyScanPending")) or one wake period passes;
#   3. energy scan (8F27): every allowed channel the radio can tune is measured; the quietest wins
#      (ties: lowest page, then channel). The hub moves only to a channel at least
#      ChannelQuieterThreshold (item 9) dB quieter than the operating one measures now; a scan
#      that finds none (the operating channel may be the quietest) ends with 8F2B, "not changed
#      due to frequency agility parameters": every accepted scan ends with 8F26 or 8F2B;
#   4. the ChannelChangePending flag and the ChannelChange attribute (the new channel's 32-bit
#      page mask) are set;
#   5. wait until the GSME reads either or two wake periods pass;
#   6. change channel: 8F26 {page, channel, trigger}.
# With no GSME registered (or no channel yet) steps 3 and 6 follow at once. A change counts in
# the week's budget, except a forced one. The radio is tuned to the operating channel after
# every scan, and the duty cycle's regulated limit follows the channel (hal.phy.LIMITS).
# A change under way is not kept across a reboot: its trigger, still there, asks again.
#
# Memory: this module is what the hub keeps (the frequent inputs, the periodic check, the state:
# about the size of the agility it replaced); the rare inputs (called as methods all the same,
# Agility.__getattr__), requests, their assessment, the scan, the change and the lost-GSME search are
# agent/agility_scan.py, loaded when one of them runs and let go after. The selection after a
# configuration with no GSME to take along is here (config.set runs it, with the least it can
# hold while it announces the configuration) and is not counted in the day's scans.
from agent.codes import ALERT_CHANNEL_CHANGED, ALERT_SCAN_INITIATED
from hal.compat import const, unload
from hal.phy import LIMITS

_WEEK_S = const(7 * 24 * 3600)
LOST_SEARCHES = const(3)
HHT, JOINING, GSME_OTA = 1, 2, 4  # set_busy()
IDLE, SCAN_PENDING, CHANGE_PENDING = 0, 1, 2  # step of the channel change


class Agility:
    def __init__(self, radio, clock, state=None, duty=None):
        self.radio = radio
        self.clock = clock
        self.duty = duty  # its regulated limit follows the operating channel
        self.config = None
        self.channels = []  # allowed and tunable (page, channel), plan order
        st = state or {}
        op = st.get("op")
        self.operating = (op[0], op[1]) if op else None
        self.baseline = st.get("base")
        # UTC seconds of recent changes: monotonic time starts again at every boot, UTC does not
        self.changes = list(st.get("changes", ()))
        self.next_check_ms = None
        self._sent = self._failed = self._retries = 0
        self.held = None  # the trigger whose episode already had its scan
        # the channel change under way: [step, target (page, channel), due ms, trigger, forced,
        # the target's energy], None when idle
        self.seq = None
        # the GSME: [EUI, wake period ms, last heard ms, failed searches, next look ms (None:
        # nothing to look for until it is heard), missing for a day raised, search end ms], None
        # when none is registered
        self.gsme = None
        # what the assessment and the reports keep (agility_scan.more): [busy flags, UTC seconds
        # of the last day's scans, and of the DCC's requests, (trigger, status) of the last
        # refusal, {non-GSME EUI: [total, failures, retries, periods]}], None until needed
        self.more = None

    def state(self):
        """What must survive a reboot (the caller persists it)."""
        return {
            "op": list(self.operating) if self.operating else None,
            "base": self.baseline,
            "changes": list(self.changes),
        }

    def __getattr__(self, name):
        # The HAN's less frequent inputs are agent/agility_scan.py's functions of the same name,
        # called as methods of the Agility, so that their code is loaded only when called:
        # gsme_joined(eui, wake_s, now), gsme_left(), gsme_read(attr, now),
        # gsme_requests_scan(now), poor_comms(eui, total, failures, retries, periods, now),
        # set_busy(HHT|JOINING|GSME_OTA, on), attributes(), request_scan(now, duty=None).
        # (A name listed nowhere would cost the hub its qstrs at boot; a name agility_scan does
        # not have raises AttributeError when called.)
        if name[0] == "_":
            raise AttributeError(name)
        return lambda *args: self._run(name, *args)

    def _run(self, name, *args):
        # agent/agility_scan.py's function `name`, loaded for the call and let go after
        from agent import agility_scan

        try:
            return getattr(agility_scan, name)(self, *args)
        finally:
            agility_scan = None
            unload("agent.agility_scan")

    # -- configuration ---------------------------------------------------------------------
    def configure(self, usable, params, now_ms):
        """Apply a validated configuration: its usable (page, channel) pairs in plan order and its
        scaled parameters keyed by DUIS name (SubGhzConfig.usable_channels() and .params). Returns
        alerts."""
        self.config = params
        self.channels = [pc for pc in usable if self.radio.can_tune(pc[0], pc[1])]
        self.next_check_ms = now_ms + params.get("LocalCHNoiseMeasurementPeriod") * 1000
        self.seq = None
        if self.operating in self.channels:
            self._retune()  # after a reboot the radio starts untuned
            return []
        if not self.channels:
            self.operating = None
            return []
        if self.gsme is None or self.operating is None:
            return self._select()
        return self._run("request", now_ms, "SMHANFormation", True)  # the GSME is taken along

    def _select(self):
        # The first selection with no GSME to take along: the quietest channel at once. Here, not
        # in agility_scan: config.set runs it just after the validator is let go, when a heap in
        # pieces may not have room for that module's code.
        best = best_e = None
        for pc in self.channels:
            e = self.radio.energy(pc[0], pc[1])
            if best_e is None or e < best_e:
                best, best_e = pc, e
        self.operating = best
        self.baseline = best_e
        self._retune()
        return [
            (ALERT_SCAN_INITIATED, None),
            (ALERT_CHANNEL_CHANGED, {"page": best[0], "channel": best[1], "trigger": "SMHANFormation"}),
        ]

    # -- the HAN's frequent inputs ---------------------------------------------------------------
    def note_delivery(self, ok, retries=0):
        self._sent += 1
        if not ok:
            self._failed += 1
        self._retries += retries

    def gsme_heard(self, now_ms):
        g = self.gsme
        if g is not None:
            g[2] = g[4] = now_ms  # the next tick works out when to look again
            g[3] = g[5] = 0
            g[6] = None

    # -- time passes -----------------------------------------------------------------------------
    def tick(self, now_ms):
        """Deadlines of the channel change, the GSME's curfew and the periodic check; returns
        alerts."""
        cfg = self.config
        if cfg is None:
            return []
        alerts = []
        seq = self.seq
        if seq is not None and now_ms >= seq[2]:
            alerts += self._run("due", now_ms)
        g = self.gsme
        if g is not None and g[4] is not None and now_ms >= g[4]:
            alerts += self._run("watch_gsme", now_ms)
        if self.next_check_ms is not None and now_ms >= self.next_check_ms:
            self.next_check_ms = now_ms + cfg.get("LocalCHNoiseMeasurementPeriod") * 1000
            trigger = self._problem()
            self._sent = self._failed = self._retries = 0
            if trigger is None:
                self.held = None  # the episode is over
            elif trigger != self.held:
                alerts += self._run("request", now_ms, trigger)
        return alerts

    def _problem(self):
        if self.operating is None:
            return None
        cfg = self.config
        if self._sent:
            # percentages are kept in hundredths: 40.00 % -> 4000
            if self._failed * 10000 >= cfg.get("LocalCHFailurePercentage") * self._sent:
                return "CHDetectedMessageFailureProblems"
            if self._retries * 10000 >= cfg.get("LocalCHRetryPercentage") * self._sent:
                return "CHDetectedMessageRetryProblems"
        noisier = cfg.get("ChannelNoisierThreshold")
        if noisier and self.baseline is not None:
            if self.radio.energy(self.operating[0], self.operating[1]) - self.baseline >= noisier:
                return "CHDetectedMessageRetryProblems"
        return None

    def _retune(self):
        op = self.operating
        if op is not None:
            self.radio.tune(op[0], op[1])
            if self.duty is not None:  # the channel's limit (hal.phy.LIMITS)
                self.duty.set_thresholds(regulated=LIMITS[62 + op[1] if op[0] == 31 else op[1]])

    def changes_left(self):
        if self.config is None:
            return 0
        utc = self.clock.utc()
        recent = [t for t in self.changes if utc - t < _WEEK_S]
        return max(0, self.config.get("MaximumSubGHzChannelChangesPerWeek") - len(recent))
