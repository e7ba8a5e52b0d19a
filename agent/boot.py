# The bootloader: picks the firmware slot to run, counts trial boots and reverts a trial that is
# not confirmed. Self-contained (sys, os, json only) and small: `dbch flash` installs it outside
# the slots as /dbchboot.mpy, and main.py is just
#     import dbchboot
#     dbchboot.main("<board>")
# so it never imports anything from a slot before it has chosen one, and a new image cannot
# replace it. agent.fw_staging (inside a slot) uses the same functions to start and confirm a trial.
#
# On-board layout, relative to the firmware root (the directory holding main.py, which is the
# parent of the agent's storage directory):
#   main.py            the two lines above          dbchboot.mpy   this module
#   fwboot.json        the boot state (below)       fwkey.bin      trusted signing key (65 bytes)
#   slots/a/, slots/b/ one image each: agent/ hal/ boards/ ... (.mpy) and manifest.json
#   slots/stage.img    an image being received (agent.fw_staging)
# A slot is bootable when its manifest.json exists: it is written last, atomically, once every
# file of the slot is in place.
#
# Boot state, fwboot.json (JSON, replaced atomically: write .tmp, rename):
#   {"v": 1, "active": "a"|"b", "trial": null|"a"|"b", "tries": n, "attempt": n,
#    "reverted": null | {"slot", "attempt", "tries", "why"}}
# "active" is the confirmed slot. "trial" is a slot activated but not yet confirmed; "tries"
# counts the boots started on it. Each trial boot is counted in fwboot.json BEFORE the slot runs,
# so a crash, a hang ended by a reset or watchdog, or a power cut all count as a failed try.
# The agent confirms a trial once it runs healthy (confirm(): trial becomes active). A trial that
# has used MAX_TRIES boots without being confirmed, or whose slot is not bootable, is dropped:
# the board boots "active" again and "reverted" says why, for the agent to report.
# A missing or unreadable state means {"active": "a"}; if the active slot is not bootable and the
# other one is, the other one becomes active; with no bootable slot at all the board runs the
# code at the root (the layout before slots).
import json
import os
import sys

VERSION = 1
SLOTS = ("a", "b")
MAX_TRIES = 3
STATE = "fwboot.json"
KEY = "fwkey.bin"
MANIFEST = "manifest.json"
SLOTS_DIR = "slots"


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
        try:
            os.replace(src, dst)  # CPython; MicroPython's rename replaces
        except AttributeError:
            os.rename(src, dst)

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


def bootable(fs, root, slot):
    return fs.exists(slot_dir(root, slot) + "/" + MANIFEST)


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


def running(st):
    """The slot the bootloader started this boot from, by the state it left."""
    if st["trial"] is not None and st["tries"] > 0:
        return st["trial"]
    return st["active"]


def decide(st, is_bootable, max_tries=MAX_TRIES):
    """(slot or None, trial?, new state or None) for one boot. Pure: no I/O."""
    st = _clean(st)
    changed = False
    trial = st["trial"]
    if trial is not None:
        ok = is_bootable(trial)
        if ok and st["tries"] < max_tries:
            st["tries"] += 1
            return trial, True, st
        why = "not confirmed after {} boots".format(st["tries"]) if ok else "slot not bootable"
        st["reverted"] = {"slot": trial, "attempt": st["attempt"], "tries": st["tries"], "why": why}
        st["trial"] = None
        st["tries"] = 0
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
    slot, trial, new = decide(read_state(fs, root), lambda s: bootable(fs, root, s), max_tries)
    if new is not None:
        write_state(fs, root, new)
    return slot, trial


def start_trial(fs, root, slot, attempt):
    """Make slot the trial for the next boot (the caller reboots)."""
    st = read_state(fs, root)
    st["active"] = running(st)
    st["trial"] = slot
    st["tries"] = 0
    st["attempt"] = attempt
    write_state(fs, root, st)
    return st


def confirm(fs, root):
    """The running trial is healthy: it becomes the active slot. The new state."""
    st = read_state(fs, root)
    if st["trial"] is not None and st["tries"] > 0:
        st["active"] = st["trial"]
        st["trial"] = None
        st["tries"] = 0
        st["reverted"] = None
        write_state(fs, root, st)
    return st


_PACKAGES = ("agent", "hal", "boards")


def _run_agent(board, path):
    # Start the agent from the slot at path (None: from the root). True if it asked for a reboot
    # and the port's reset did not end the interpreter (no reset callable).
    for p in [p for p in sys.path if p.startswith(SLOTS_DIR + "/") or ("/" + SLOTS_DIR + "/") in p]:
        sys.path.remove(p)
    for name in list(sys.modules):
        if name.split(".")[0] in _PACKAGES:
            del sys.modules[name]  # an earlier boot in this interpreter loaded another slot
    if path is not None:
        sys.path.insert(0, path)
    import boards

    b = boards.load(board)
    from agent.run import serve

    hub = serve(b.make_hal(), b)
    return bool(getattr(hub, "reboot_requested", False))


def _reset():
    try:
        import machine

        machine.reset()  # never returns on a board
    except (ImportError, AttributeError, SystemExit):
        pass  # no reset here, or one that came back as an exception: boot again in-process


def main(board, root="", fs=None, run=None, reset=None):
    """Boot: choose a slot, run the agent from it (run(board, slot path)). A reset that comes
    back as SystemExit (the unix port's machine.reset on the virtual board) or a reboot the
    agent asked for boots again here. An exception out of a trial boot resets the board (the
    next boot counts another try); one out of a confirmed slot propagates (to the REPL, as
    without a bootloader), and so does KeyboardInterrupt: Ctrl-C before the agent owns the line
    (while it does, 0x03 is data, hal/stream_link.py; mpremote gets in by the "repl" request,
    after which the agent returns here and main.py ends at the REPL)."""
    fs = fs or OsFs()
    run = run or _run_agent
    reset = reset or _reset
    while True:
        slot, trial = choose(fs, root)
        try:
            if not run(board, slot_dir(root, slot) if slot is not None else None):
                return slot
        except KeyboardInterrupt:
            raise
        except SystemExit:
            pass
        except Exception as e:
            if not trial:
                raise
            try:
                sys.print_exception(e)
            except AttributeError:
                pass
            print("dbchboot: trial slot {} failed; resetting".format(slot))
            reset()
