# Firmware activation, its cancel and the status report: fw.activate, fw.cancel and fw.status
# of the Updater (agent.fw_staging), the start of a scheduled activation that has come due
# (agent.fw_service's tick), and a trial refused at start for being below the minimum security
# counter. Loaded for those only (Updater.activation), so a board receiving an image does not
# hold them; the operations and records are described in agent/fw_service.py, the codes in
# agent/fw_common.py.
from agent.fw_common import RC_BAD, RC_NO_CANCEL, RC_OK, RC_ROLLBACK, RC_STATE, ROLLBACK, FwError, arg_bytes, boot_code
from hal.compat import hexstr

_CUM_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _days(y, m, d):
    # days from 1970-01-01 (proleptic Gregorian)
    y1 = y - 1
    n = 365 * (y - 1970) + (y1 // 4 - 1969 // 4) - (y1 // 100 - 1969 // 100) + (y1 // 400 - 1969 // 400)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    return n + _CUM_DAYS[m - 1] + (1 if leap and m > 2 else 0) + d - 1


def parse_utc(text):
    """UTC seconds since 1970 from 'YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm|-hh:mm]' (ValueError)."""
    t = text.strip()
    if len(t) < 19 or t[4] != "-" or t[7] != "-" or t[10] not in "Tt" or t[13] != ":" or t[16] != ":":
        raise ValueError("{!r} is not an ISO 8601 UTC time (YYYY-MM-DDThh:mm:ssZ)".format(text))
    try:
        y, mo, d = int(t[0:4]), int(t[5:7]), int(t[8:10])
        h, mi, s = int(t[11:13]), int(t[14:16]), int(t[17:19])
        rest = t[19:]
        if rest.startswith("."):
            i = 1
            while i < len(rest) and rest[i].isdigit():
                i += 1
            if i == 1:
                raise ValueError
            rest = rest[i:]
        off = 0
        if rest in ("", "Z", "z"):
            pass
        elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
            off = (int(rest[1:3]) * 60 + int(rest[4:6])) * 60
            if rest[0] == "-":
                off = -off
        else:
            raise ValueError
    except ValueError:
        raise ValueError("{!r} is not an ISO 8601 UTC time (YYYY-MM-DDThh:mm:ssZ)".format(text))
    if y < 1970 or not 1 <= mo <= 12 or not 1 <= d <= 31 or h > 23 or mi > 59 or s > 60:
        raise ValueError("{!r} is out of range".format(text))
    return _days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off


def activate(u, args):
    digest = arg_bytes(args, "hash", 32, 32)
    when = args.get("execution")
    if when is None:
        at = None
    elif isinstance(when, str):
        try:
            at = parse_utc(when)
        except ValueError as e:
            raise FwError(RC_BAD, "execution: {}".format(e))
    elif isinstance(when, int) and not isinstance(when, bool) and when >= 0:
        at = when
    else:
        raise FwError(RC_BAD, "execution must be null, an ISO 8601 UTC time or UTC seconds")
    if u.svc.running_hash() == digest:
        raise FwError(RC_STATE, "image {} is the one running already".format(hexstr(digest)))
    st = u._state()
    u._inactive(st)
    slot = u._find(digest)
    if slot is None:
        # GBCS's device outcome (Activate Firmware): noImageHeld when no image is staged at all,
        # hashMismatch when the image held has another hash
        held = any(s != u.svc.slot and u.ready(s) is not None for s in boot_code().SLOTS)
        raise FwError(
            RC_STATE,
            "no staged and verified image has hash {}".format(hexstr(digest)),
            {"outcome": "hashMismatch" if held else "noImageHeld"},
        )
    m = u.ready(slot, digest)
    permit = u._check_permit(args, digest)
    u.admit(boot_code().counter(m), m.get("version"), permit)
    act = {
        "hash": digest,
        "slot": slot,
        "version": m.get("version"),
        "at": at,
        "state": "scheduled",
        "attempt": st["attempt"] + 1,
        "from": u.svc.version,
    }
    if permit:
        act["permit"] = True  # for the trial's check at start (agent.fw_service); used once
    now = u.clock.utc()
    if at is not None and at > now:
        u.store.put("fw.act", act)
        u.svc._act = act
        return RC_OK, {"slot": slot, "version": act["version"], "at": at, "reboot": False}, None
    start(u, act)
    return RC_OK, {"slot": slot, "version": act["version"], "at": None, "reboot": True}, None


def start(u, act):
    # Re-check at the moment of activation (a scheduled one waited).
    st = u._state()
    u._inactive(st)
    m = u.ready(act["slot"], act["hash"])
    if m is None:
        raise FwError(RC_STATE, "the image to activate is no longer staged")
    if not act.get("permit") and boot_code().counter(m) < u.svc.min_sec():
        raise FwError(RC_ROLLBACK, "the image is now below this hub's minimum security counter")
    act = dict(act)
    act["state"] = "started"
    act["attempt"] = st["attempt"] + 1
    u.store.put("fw.act", act)
    u.svc._act = act
    boot_code().start_trial(u.fs, u.root, act["slot"], act["attempt"], act.get("permit") is True)
    u.hub.reboot_requested = True


def cancel(u, args):
    act = u.svc._act
    if act is None or act.get("state") != "scheduled":
        raise FwError(RC_NO_CANCEL, "no firmware activation is scheduled")
    h = args.get("hash")
    if h is not None and h != act.get("hash"):
        raise FwError(RC_NO_CANCEL, "the scheduled activation is of another image")
    u.store.delete("fw.act")
    u.svc._act = None
    return RC_OK, {"hash": act["hash"]}, None


def start_due(u, act):
    # a scheduled activation whose time has come (agent.fw_service's tick)
    try:
        start(u, act)
    except FwError as e:
        u.svc._finish(act, "failed", str(e))


def refuse_trial(u, st):
    # At start, a trial below the minimum without a rollback permission (under a bootloader that
    # does not read the minimum): reverted before it is confirmed, and recorded; the board
    # reboots into the active slot, which reports the outcome.
    b = boot_code()
    why = b.BELOW_MIN
    st["reverted"] = {"slot": st["trial"], "attempt": st["attempt"], "tries": st["tries"], "why": why, "noted": True}
    st["trial"] = None
    st["tries"] = 0
    b.write_state(u.fs, u.root, st)
    b = None
    u.svc.trial = False
    u.hub.reboot_requested = True
    u.install("security", "trial boot of {} refused: {}".format(u.svc.version, why), ROLLBACK)


def note_refusal(u, st):
    # A trial the bootloader refused below the minimum: recorded, once (the boot state notes it).
    b = boot_code()
    rev = st["reverted"]
    rev["noted"] = True
    u.install("security", "trial boot of slot {} refused: {}".format(rev.get("slot"), b.BELOW_MIN), ROLLBACK)
    try:
        b.write_state(u.fs, u.root, st)
    except OSError as e:  # flash trouble: noted again at the next start
        print("firmware: refusal not noted:", e)


def status(u, args):
    st = u._state()
    slots = {}
    boot = boot_code()
    for s in boot.SLOTS:
        m = boot.read_manifest(u.fs, u.root, s)
        slots[s] = {"version": m.get("version"), "hash": m.get("hash")} if m else None
    staging = None
    rec = u.store.get("fw.stage")
    if isinstance(rec, dict) and isinstance(rec.get("hash"), bytes):
        n = u._session.staged if u._session is not None else u._blob_size()
        staging = {"hash": hexstr(rec["hash"]), "size": rec.get("size"), "staged": n}
    act = u.svc._act
    sched = None
    if act is not None:
        sched = {
            "hash": hexstr(act["hash"]),
            "slot": act.get("slot"),
            "at": act.get("at"),
            "state": act.get("state"),
        }
    last = u.store.get("fw.last")
    if isinstance(last, dict) and isinstance(last.get("hash"), bytes):
        last = dict(last)
        last["hash"] = hexstr(last["hash"])
    key = u.fs.exists(u.key_path)
    return (
        RC_OK,
        {
            "version": u.svc.version,
            "slot": u.svc.slot,
            "trial": u.svc.trial,
            "hash": u.svc.manifest.get("hash") if u.svc.manifest else None,
            "slots": slots,
            "staging": staging,
            "activation": sched,
            "last": last,
            "key": key,
            "boot": {
                "active": st["active"],
                "tries": st["tries"],
                "attempt": st["attempt"],
                "reverted": st["reverted"],
            },
            "sec": u.svc.sec,
            "min": u.svc.read_min(),
            "chunk": u.svc.max_chunk,
            "max_size": u.svc.max_image,
            "utc": u.clock.utc(),
        },
        None,
    )
