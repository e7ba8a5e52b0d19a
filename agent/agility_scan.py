# Frequency agility's rare paths (agent/agility.py has the model and what the hub keeps): a
# request to scan and its assessment (8F28), the scan (8F27, 8F2B), the channel change (8F26),
# the lost-GSME search (8F29), the non-GSME devices' reports and the GSME's reads. Loaded by
# Agility._run for one call and let go after: functions of the Agility they are handed, with
# no state of their own.
# (agent.agility's constants are repeated, not imported: it imports this module;
# tests/portable/test_agility.py checks that the two agree.)
from agent import codes
from hal.compat import const
from hal.phy import PLAN

IDLE, SCAN_PENDING, CHANGE_PENDING = 0, 1, 2
HHT, JOINING, GSME_OTA = 1, 2, 4
LOST_SEARCHES = const(3)
_WEEK_S = const(7 * 24 * 3600)
_DAY_S = const(24 * 3600)
_DAY_MS = const(24 * 3600 * 1000)
MAX_SCANS_PER_DAY = const(12)
MAX_COMMANDS_PER_DAY = const(3)
MAX_REPORTERS = const(32)  # non-GSME devices whose reports are added up at one time
ACCEPTED = "ScanRequestAccepted"


def _recent(times, now, span):
    return [t for t in times if now - t < span]


def more(ag):
    """Agility.more, made when first needed: [busy, scans, commands, refusal, reports]."""
    m = ag.more
    if m is None:
        m = ag.more = [0, [], [], None, {}]
    return m


def set_busy(ag, what, on):
    m = more(ag)
    m[0] = (m[0] | what) if on else (m[0] & ~what)


def attributes(ag):
    seq = ag.seq
    step = seq[0] if seq else IDLE
    t = seq[1] if seq else None
    return {
        "EnergyScanPending": step == SCAN_PENDING,
        "ChannelChangePending": step == CHANGE_PENDING,
        "ChannelChange": (t[0] << 27) | (1 << (t[1] - PLAN[t[0]][0])) if step == CHANGE_PENDING else None,
    }


def assess(ag, trigger, duty=None):
    """The 8F28 status a request with this trigger gets now."""
    m = more(ag)
    if m[0] & HHT:
        return "HHTConnected"
    if duty is None:
        duty = ag.duty.state if ag.duty is not None else "normal"
    if duty != "normal":
        return "DutyCycleUsageIsTooHigh"
    if m[0] & JOINING:
        return "JoiningIsCurrentlyPermitted"
    if m[0] & GSME_OTA:
        return "GSMEOTADistributionUnderway"
    utc = ag.clock.utc()
    if trigger == "RemotePartyCommand":
        m[2] = _recent(m[2], utc, _DAY_S)
        if len(m[2]) >= MAX_COMMANDS_PER_DAY:
            return "TooManyCommandsToday"
    m[1] = _recent(m[1], utc, _DAY_S)
    if len(m[1]) >= MAX_SCANS_PER_DAY:
        return "TooManyScansToday"
    if not ag.changes_left():
        return "TooManyScansThisWeek"
    return ACCEPTED


def _waits(ag):
    # the GSME is there to wait for, and a channel to take it from
    return ag.gsme is not None and ag.operating is not None and ag.gsme[1]


def request_scan(ag, now_ms, duty=None):
    """A DCC request (SRV 6.29) while the duty cycle is in state `duty` (default: the duty
    cycle's own); 8F28 first."""
    more(ag)[3] = None  # every DCC request gets its answer
    return request(ag, now_ms, "RemotePartyCommand", False, duty)


def request(ag, now_ms, trigger, forced=False, duty=None):
    """A request to scan: assessed (8F28), then, accepted, step 1 or straight to the scan."""
    if ag.seq is not None:
        return []  # a change is under way: its scan answers this request too
    m = more(ag)
    status = ACCEPTED if forced else assess(ag, trigger, duty)
    if status != ACCEPTED and m[3] == (trigger, status):
        return []
    alerts = [(codes.ALERT_SCAN_OUTCOME, {"status": status, "trigger": trigger})]
    if status != ACCEPTED:
        m[3] = (trigger, status)
        return alerts
    m[3] = None
    utc = ag.clock.utc()
    m[1].append(utc)
    if trigger == "RemotePartyCommand":
        m[2].append(utc)
    wait = _waits(ag)
    ag.seq = [SCAN_PENDING, None, now_ms + ag.gsme[1] if wait else now_ms, trigger, forced, None]
    if wait:
        return alerts  # step 1: EnergyScanPending set; step 2: wait
    return alerts + scan(ag, now_ms)


def read(ag, attr, now_ms):
    """The GSME read a flag or attribute: the wait of step 2 or 5 ends."""
    step = ag.seq[0]
    if step == SCAN_PENDING and attr == "EnergyScanPending":
        return scan(ag, now_ms)
    if step == CHANGE_PENDING and attr in ("ChannelChangePending", "ChannelChange"):
        return change(ag)
    return []


def due(ag, now_ms):
    """The wait of step 2 (one wake period) or step 5 (two) is over."""
    return scan(ag, now_ms) if ag.seq[0] == SCAN_PENDING else change(ag)


def scan(ag, now_ms):
    """Step 3: the energy scan (8F27), then 8F2B or on to step 4."""
    seq = ag.seq
    trigger, forced = seq[3], seq[4]
    ag.held = trigger
    alerts = [(codes.ALERT_SCAN_INITIATED, None)]
    best, best_e = None, None
    current_e = None
    for pc in ag.channels:
        e = ag.radio.energy(pc[0], pc[1])
        if pc == ag.operating:
            current_e = e
        if best_e is None or e < best_e:
            best, best_e = pc, e
    quieter = ag.config.get("ChannelQuieterThreshold")
    if best is None or (not forced and current_e is not None and current_e - best_e < quieter):
        ag.seq = None
        ag._retune()
        return alerts + ([(codes.ALERT_CHANNEL_NOT_CHANGED, None)] if best is not None else [])
    seq[1] = best
    seq[5] = best_e
    if _waits(ag):
        seq[0] = CHANGE_PENDING  # step 4: ChannelChangePending and ChannelChange set
        seq[2] = now_ms + 2 * ag.gsme[1]  # step 5: wait
        ag._retune()
        return alerts
    return alerts + change(ag)


def change(ag):
    """Step 6: the change (8F26)."""
    seq = ag.seq
    ag.seq = None
    best = seq[1]
    if best not in ag.channels:  # a new configuration came in between
        return []
    ag.held = None  # a move ends the episode: a problem on the new channel is a new one
    if not seq[4]:
        utc = ag.clock.utc()
        ag.changes = _recent(ag.changes, utc, _WEEK_S)
        ag.changes.append(utc)
    ag.operating = best
    ag.baseline = seq[5]
    ag._retune()
    return [(codes.ALERT_CHANNEL_CHANGED, {"page": best[0], "channel": best[1], "trigger": seq[3]})]


def poor_comms(ag, eui, total, failures, retries, periods, now_ms):
    """A non-GSME device's MAC statistics: added up over NonGSMEPoorCommsMeasurementPeriods of
    its periods, then judged against NonGSMEPoorCommsPercentageThreshold."""
    cfg = ag.config
    if cfg is None or (ag.gsme is not None and eui == ag.gsme[0]):
        return []
    poor = more(ag)[4]
    acc = poor.get(eui)
    if acc is None:
        if len(poor) >= MAX_REPORTERS:
            return []
        acc = poor[eui] = [0, 0, 0, 0]
    acc[0] += total
    acc[1] += failures
    acc[2] += retries
    acc[3] += periods
    if acc[3] < cfg.get("NonGSMEPoorCommsMeasurementPeriods"):
        return []
    del poor[eui]
    limit = cfg.get("NonGSMEPoorCommsPercentageThreshold") * acc[0]  # hundredths of a percent
    if acc[0] and (acc[1] * 10000 >= limit or acc[2] * 10000 >= limit):
        return request(ag, now_ms, "SubGHzNon-GSMEDeviceRequest")
    return []


def watch_gsme(ag, now_ms):
    """Time to look at the GSME: a day unheard, a missed curfew and the lost-GSME search (8F29);
    then when to look next (gsme[4])."""
    g = ag.gsme
    silent = now_ms - g[2]
    curfew = ag.config.get("GSMECurfew") * g[1]
    alerts = []
    if silent >= _DAY_MS and not g[5]:
        g[5] = 1
        alerts += request(ag, now_ms, "GSMEMissingForTheLastDay")
    if g[3] < LOST_SEARCHES and silent >= curfew and (g[6] is None or now_ms >= g[6]):
        if g[6] is not None:
            g[3] += 1  # the search ended unheard
            if g[3] >= LOST_SEARCHES:
                alerts.append((codes.ALERT_LOST_GSME_SEARCHES, None))
        if g[3] < LOST_SEARCHES:
            g[6] = now_ms + curfew  # a search: one curfew to hear the GSME
            more(ag)[3] = None  # each search is a request of its own
            alerts += request(ag, now_ms, "GSMEMissedItsCurfew")
    nxt = None
    if not g[5]:
        nxt = g[2] + _DAY_MS
    if g[3] < LOST_SEARCHES:
        at = g[6] if g[6] is not None else g[2] + curfew
        nxt = at if nxt is None else min(nxt, at)
    g[4] = nxt
    return alerts


def gsme_joined(ag, eui, wake_s, now_ms):
    """The GSME is registered (its mirror allocated) and wakes every wake_s seconds."""
    ag.gsme = [eui, wake_s * 1000, now_ms, 0, now_ms, 0, None]


def gsme_left(ag):
    ag.gsme = None


def gsme_read(ag, attr, now_ms):
    """The GSME read attribute or flag `attr` (steps 3 or 6 may follow)."""
    ag.gsme_heard(now_ms)
    return read(ag, attr, now_ms) if ag.seq else []


def gsme_requests_scan(ag, now_ms):
    ag.gsme_heard(now_ms)
    return request(ag, now_ms, "GSMERequest")
