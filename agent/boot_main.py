# The bootloader's loop: what stays loaded while the agent runs. `dbch flash` installs it outside
# the slots as /dbchboot.mpy, beside the code that chooses the slot (agent/boot.py, installed as
# /dbchslots.mpy), and the main.py it writes hands it what is the board's:
#     def start():  # boards.load("<board>"), then agent.run.serve on its HAL
#         ...
#     dbchboot.main(start, reset=machine.reset, print_exception=sys.print_exception)
# For each boot it loads the choosing code, lets it pick the slot and count a trial boot, and
# unloads it before start() runs: that code (about 8 KB of heap once loaded) holds nothing while
# the agent runs. The agent's firmware service loads its own copy (agent.boot) when it needs it.
# Self-contained (sys only) and small: it never imports anything from a slot, and a new image
# cannot replace it.
import sys

SLOTS_MODULE = "dbchslots"  # agent/boot.py as flashed
_PACKAGES = ("agent", "hal", "boards")


def _unslot():
    # Nothing from a slot importable: no slot on sys.path, no module an earlier boot in this
    # interpreter loaded from one (a module with no file is the port's own, as its built-ins
    # are: the virtual board's hardware, host_tools/onboard/unix_boot.py).
    for p in [p for p in sys.path if p.startswith("slots/") or "/slots/" in p]:
        sys.path.remove(p)
    for name in list(sys.modules):
        if name.split(".")[0] in _PACKAGES and hasattr(sys.modules[name], "__file__"):
            del sys.modules[name]


def choose(root, fs, slots):
    # (slot or None, the path its modules are imported from or None, trial?) from the choosing
    # code, loaded for the moment: a slot's directory, or its place in the board's ROMFS image.
    __import__(slots)
    b = sys.modules[slots]
    try:
        fs = fs or b.OsFs()
        slot, trial = b.choose(fs, root)
        return slot, b.module_dir(fs, root, slot) if slot is not None else None, trial
    finally:
        del sys.modules[slots]


def _run_agent(start, path):
    # Make the slot at path (None: the root) the one modules are imported from, then start():
    # True if the agent asked for a reboot and the board's reset did not end the interpreter.
    _unslot()
    if path is not None:
        sys.path.insert(0, path)
    return bool(start())


def main(start, root="", fs=None, run=None, reset=None, print_exception=None, slots=SLOTS_MODULE):
    """Boot: choose a slot and run start() from it (run(start, slot path)). start is main.py's:
    it loads the board and the agent from the chosen slot and returns True when the agent asked
    for a reboot; reset is the board's (machine.reset), print_exception how it prints a
    traceback; slots names the module that chooses (agent/boot.py as flashed). A reset that
    comes back as SystemExit (the unix port's machine.reset on the virtual board) or a reboot the
    agent asked for boots again here. An exception out of a trial boot resets the board (the next
    boot counts another try; without a reset it boots again here); one out of a confirmed slot
    propagates (to the REPL, as without a bootloader), and so does KeyboardInterrupt: Ctrl-C
    before the agent owns the line (while it does, 0x03 is data, hal/stream_link.py; mpremote
    gets in by the "repl" request, after which the agent returns here and main.py ends at the
    REPL)."""
    run = run or _run_agent
    while True:
        slot, path, trial = choose(root, fs, slots)
        try:
            if not run(start, path):
                return slot
        except KeyboardInterrupt:
            raise
        except SystemExit:
            pass
        except Exception as e:
            if not trial:
                raise
            if print_exception is not None:
                print_exception(e)
            print("dbchboot: trial slot {} failed; resetting".format(slot))
            if reset is not None:
                try:
                    reset()  # never returns on a board
                except SystemExit:
                    pass  # the virtual board's reset: boot again in-process
