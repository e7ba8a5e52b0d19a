# The bootloader's choice: picks the firmware slot to run, counts trial boots and reverts a trial
# that is not confirmed. Self-contained (os, json only): `dbch flash` installs it outside the
# slots as /dbchslots.mpy, and the bootloader's loop (agent/boot_main.py, /dbchboot.mpy) loads it
# for each boot (choose()) and unloads it before the agent starts, so it never imports anything
# from a slot before one is chosen, and a new image cannot replace it. The firmware service
# (agent.fw_service, inside a slot) loads the slot's copy of this module when it reads the boot
# state and the security counters, or starts and confirms a trial.
#
# On-board layout, relative to the firmware root (the directory holding main.py, which is the
# parent of the agent's storage directory):
#   main.py            start(), dbchboot.main       dbchboot.mpy   the loop (agent/boot_main.py)
#   dbchslots.mpy      this module                  fwkey.bin      trusted signing key (65 bytes)
#   fwboot.json        the boot state (below)
#   fwmin.json         the minimum security counter {"sec": n} (agent/fw_service.py)
#   slots/a/, slots/b/ one image each: agent/ hal/ boards/ ... (.mpy) and manifest.json
#   slots/stage.img    an image being received (agent.fw_staging)
#   dbch.romfs         on a board that mounts a ROMFS image (the virtual board): slot A's modules,
#                      at their paths (slots/a/agent/...), imported in place from ROM (/rom) when
#                      the slot holds the mark ROMFS_MARK (`dbch flash` writes both)
# A slot is bootable when its manifest.json exists: it is written last, atomically, once every
# file of the slot is in place; a slot with the mark also needs its modules in the mounted image.
#
# Boot state, fwboot.json (JSON, replaced atomically: write .tmp, rename):
#   {"v": 1, "active": "a"|"b", "trial": null|"a"|"b", "tries": n, "attempt": n,
#    "reverted": null | {"slot", "attempt", "tries", "why", "noted"?}, "permit"?: true}
# "active" is the confirmed slot. "trial" is a slot activated but not yet confirmed; "tries"
# counts the boots started on it. Each trial boot is counted in fwboot.json BEFORE the slot runs,
# so a crash, a hang ended by a reset or watchdog, or a power cut all count as a failed try.
# The agent confirms a trial once it runs healthy (confirm(): trial becomes active). A trial that
# has used MAX_TRIES boots without being confirmed, whose slot is not bootable, or whose image's
# security counter (counter(): its manifest's) is below the minimum in fwmin.json without a
# rollback permission ("permit": true, set with the trial by start_trial when the agent checked
# one) is dropped: the board boots "active" again and "reverted" says why, for the agent to
# report ("noted": the agent has recorded a refusal below the minimum as a security incident).
# A confirmed slot below the minimum still boots: nothing newer can.
# A missing or unreadable state means {"active": "a"}; if the active slot is not bootable and the
# other one is, the other one becomes active; with no bootable slot at all the board runs the
# code at the root (the layout before slots).
import json
import os

VERSION = 1  # of the boot state
SLOTS = ("a", "b")
MAX_TRIES = 3
STATE = "fwboot.json"
KEY = "fwkey.bin"
MIN_FILE = "fwmin.json"  # the minimum security counter
MANIFEST = "manifest.json"
SLOTS_DIR = "slots"
ROM = "/rom"  # where the board mounts its ROMFS image
ROMFS_MARK = "romfs"  # in a slot: its modules are in the ROMFS image, under the slot's own path
MAX_SEC = 999999999  # the largest security counter (a small int on every port)
BELOW_MIN = "below the minimum security counter"


def join(root, name):
    if not root:
        return name
    if root.endswith("/"):
        return root + name
    return root + "/" + name


def slot_dir(root, slot):
    return join(root, SLOTS_DIR + "/" + slot)


def other(slot):
    return "b" if slot == "a" else "a"


class OsFs:
    # The file-system calls used here, over os (the same interface as hal.fs_storage's fs).
    def open(self, path, mode):
        return open(path, mode)

    def rename(self, src, dst):
        os.rename(src, dst)  # on a board (MicroPython's VFS), rename replaces dst

    def remove(self, path):
        os.remove(path)

    def exists(self, path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def sync_file(self, f):
        f.flush()


def default_state():
    return {"v": VERSION, "active": "a", "trial": None, "tries": 0, "attempt": 0, "reverted": None}


def _clean(st):
    # Any damage reads as a sane state: the bootloader must always boot something.
    out = default_state()
    if not isinstance(st, dict):
        return out
    if st.get("active") in SLOTS:
        out["active"] = st["active"]
    if st.get("trial") in SLOTS and st["trial"] != out["active"]:
        out["trial"] = st["trial"]
    for k in ("tries", "attempt"):
        v = st.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out[k] = v
    if isinstance(st.get("reverted"), dict):
        out["reverted"] = st["reverted"]
    if out["trial"] is not None and st.get("permit") is True:
        out["permit"] = True
    return out


def read_state(fs, root):
    path = join(root, STATE)
    try:
        f = fs.open(path, "rb")
    except OSError:
        return default_state()
    try:
        raw = f.read()
    finally:
        f.close()
    try:
        return _clean(json.loads(bytes(raw).decode()))
    except (ValueError, UnicodeError):
        return default_state()


def write_json(fs, path, obj):
    """Replace path with obj as JSON atomically: a temporary, synced, then renamed over it."""
    tmp = path + ".tmp"
    f = fs.open(tmp, "wb")
    try:
        f.write(json.dumps(obj).encode())
        fs.sync_file(f)
    finally:
        f.close()
    fs.rename(tmp, path)


def write_state(fs, root, st):
    write_json(fs, join(root, STATE), st)


def module_dir(fs, root, slot):
    """Where slot's modules are imported from: its directory, or the same path in the board's
    mounted ROMFS image (ROM + "/slots/<slot>") when the slot holds ROMFS_MARK."""
    d = slot_dir(root, slot)
    if fs.exists(d + "/" + ROMFS_MARK):
        return ROM + "/" + SLOTS_DIR + "/" + slot
    return d


def bootable(fs, root, slot):
    d = slot_dir(root, slot)
    if not fs.exists(d + "/" + MANIFEST):
        return False
    return not fs.exists(d + "/" + ROMFS_MARK) or fs.exists(ROM + "/" + SLOTS_DIR + "/" + slot)


def read_manifest(fs, root, slot):
    """The slot's manifest as a dict, or None if the slot has none (or it is damaged)."""
    try:
        f = fs.open(slot_dir(root, slot) + "/" + MANIFEST, "rb")
    except OSError:
        return None
    try:
        m = json.loads(bytes(f.read()).decode())
    except (ValueError, UnicodeError):
        return None
    finally:
        f.close()
    return m if isinstance(m, dict) else None


# -- security counters (anti-rollback; the agent's side: agent/fw_service.py) ------------------


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
    """The hub's minimum security counter, fwmin.json {"sec": n} (0 when it has none yet)."""
    try:
        f = fs.open(join(root, MIN_FILE), "rb")
    except OSError:
        return 0
    try:
        v = json.loads(bytes(f.read()).decode()).get("sec")
    except (ValueError, UnicodeError, AttributeError):
        v = 0
    finally:
        f.close()
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEC else 0


def running(st):
    """The slot the bootloader started this boot from, by the state it left."""
    if st["trial"] is not None and st["tries"] > 0:
        return st["trial"]
    return st["active"]


def decide(st, is_bootable, max_tries=MAX_TRIES, below_min=None):
    """(slot or None, trial?, new state or None) for one boot. Pure: no I/O. below_min(slot):
    whether the slot's image is below the minimum security counter (a trial without a rollback
    permission is not booted then)."""
    st = _clean(st)
    changed = False
    trial = st["trial"]
    if trial is not None:
        ok = is_bootable(trial)
        low = ok and below_min is not None and not st.get("permit") and below_min(trial)
        if ok and not low and st["tries"] < max_tries:
            st["tries"] += 1
            return trial, True, st
        if low:
            why = BELOW_MIN
        else:
            why = "not confirmed after {} boots".format(st["tries"]) if ok else "slot not bootable"
        st["reverted"] = {"slot": trial, "attempt": st["attempt"], "tries": st["tries"], "why": why}
        st["trial"] = None
        st["tries"] = 0
        st.pop("permit", None)
        changed = True
    active = st["active"]
    if not is_bootable(active):
        if is_bootable(other(active)):
            st["active"] = other(active)
            changed = True
        else:
            return None, False, st if changed else None
    return st["active"], False, st if changed else None


def choose(fs, root, max_tries=MAX_TRIES):
    """Read the state, decide, persist the decision; (slot or None, trial?)."""
    slot, trial, new = decide(
        read_state(fs, root),
        lambda s: bootable(fs, root, s),
        max_tries,
        lambda s: counter(read_manifest(fs, root, s) or {}) < read_min(fs, root),
    )
    if new is not None:
        write_state(fs, root, new)
    return slot, trial


def start_trial(fs, root, slot, attempt, permit=False):
    """Make slot the trial for the next boot (the caller reboots). permit: its activation carries
    a rollback permission (checked by the agent), so the trial boots below the minimum."""
    st = read_state(fs, root)
    st["active"] = running(st)
    st["trial"] = slot
    st["tries"] = 0
    st["attempt"] = attempt
    if permit:
        st["permit"] = True
    else:
        st.pop("permit", None)
    write_state(fs, root, st)
    return st


def confirm(fs, root):
    """The running trial is healthy: it becomes the active slot. The new state."""
    st = read_state(fs, root)
    if st["trial"] is not None and st["tries"] > 0:
        st["active"] = st["trial"]
        st["trial"] = None
        st["tries"] = 0
        st.pop("permit", None)
        st["reverted"] = None
        write_state(fs, root, st)
    return st
