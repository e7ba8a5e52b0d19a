# The SHA-256 of every file in some folders of a board's flash, and of some files: what
# `dbch flash` asks before it writes, so that only what changed is sent.
#
# Started through mpremote's raw REPL: the host sends this file's text followed by the lines
# "hashes(DIRS, FILES)" and "del hashes", the lists as literals. First the line "VfsRom" if the
# board's firmware can mount a ROMFS image (vfs.VfsRom, MicroPython 1.25 and later), then one line a file,
# "<hex digest> <path>", printed as each is hashed: nothing is gathered on the board's heap (a
# small board has no block for a listing of every file at once), and nothing is left in the
# REPL's globals for the agent that starts next. A folder or a file that is not there is passed
# over.


def hashes(dirs, files):
    import gc
    import sys

    # the agent that handed the line over is still loaded: its code is let go first (it is about
    # to be replaced; a small heap has no room for both it and this listing). A module with no
    # file is the port's own (agent/boot_main.py): it stays.
    for name in list(sys.modules):
        if name.split(".")[0] in ("agent", "hal", "boards") and hasattr(sys.modules[name], "__file__"):
            del sys.modules[name]
    gc.collect()

    import binascii
    import hashlib
    import os

    try:
        import vfs

        if hasattr(vfs, "VfsRom"):
            print("VfsRom")
    except ImportError:
        pass

    buf = bytearray(512)

    def one(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(memoryview(buf)[:k])
        print(binascii.hexlify(h.digest()).decode(), path)

    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = d + "/" + n
            if not os.stat(p)[0] & 0x4000:
                one(p)
    for p in files:
        try:
            one(p)
        except OSError:
            pass
