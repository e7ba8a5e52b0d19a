# What is flashed, in one digest: `dbch flash` asks the running agent ("flashed" on the local
# link, agent/run.py) before it hands the line over to the REPL, and a board whose files are all
# as the host would write them is left as it is, agent and all. Loaded for the request and let go
# after it (hal.compat.unload): nothing of it stays on the heap.
#
# The digest is the SHA-256 over, for each file there, its path, a newline and its own SHA-256
# (32 bytes): first the files in each folder of dirs (in the order given, each folder's names
# sorted; a name that cannot be read as a file, a folder, is passed over), then each file of files
# that is there (in the order given). Paths are relative to the flash's root (the folder holding
# the agent's storage folder). The host computes the same over what it would write
# (host_tools.firmware.flash): any file changed, missing or left over makes them differ.
import hashlib

from agent.hub import RC_BAD_ARGS, RC_OK

_BUF = 512


def _one(fs, path, buf, mv):
    # the SHA-256 of the file at path, or None if it cannot be read as a file
    try:
        f = fs.open(path, "rb")
    except OSError:
        return None
    h = hashlib.sha256()
    try:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            h.update(mv[:k])
    except OSError:  # a folder, on a port whose open() takes one
        return None
    finally:
        f.close()
    return h.digest()


def digest(fs, root, dirs, files):
    """(the digest, how many files it covers) of dirs and files under root ("" or ending in "/")."""
    total = hashlib.sha256()
    buf = bytearray(_BUF)
    mv = memoryview(buf)
    n = 0
    for d in dirs + [None]:
        if d is None:
            names, d = files, ""
        else:
            try:
                names = sorted(fs.listdir(root + d))
            except OSError:
                continue
            d += "/"
        for name in names:
            h = _one(fs, root + d + name, buf, mv)
            if h is not None:
                total.update((d + name).encode())
                total.update(b"\n")
                total.update(h)
                n += 1
    return total.digest(), n


def _strings(args, name):
    v = args.get(name) or []
    if not isinstance(v, list) or any(not isinstance(s, str) for s in v):
        raise ValueError("{} must be a list of paths".format(name))
    return v


def handle(storage, args):
    """The "flashed" request: {"dirs": [...], "files": [...]} -> (rc, {"sha", "n"}, err)."""
    try:
        dirs, files = _strings(args, "dirs"), _strings(args, "files")
    except ValueError as e:
        return RC_BAD_ARGS, None, str(e)
    fs = getattr(storage, "fs", None)
    if fs is None:
        return RC_BAD_ARGS, None, "this board keeps no files"
    root = getattr(storage, "root", "")
    sha, n = digest(fs, root[: root.rfind("/") + 1], dirs, files)
    return RC_OK, {"sha": sha, "n": n}, None
