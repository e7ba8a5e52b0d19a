# An in-memory file system with power-cut injection, implementing the small fs interface that
# hal.fs_storage.FileStorage uses (open, rename, remove, listdir, mkdir, exists, size,
# sync_file).
#
# Mutating operations are counted in `writes` (1-based, never reset): each write() call on an
# open file, each rename, each remove, each mkdir, and each open that creates or truncates a
# file. cut_at(n) makes operation number n raise PowerCut instead of completing:
#   - write(): a torn prefix (the first half of its bytes) reaches the flash, the rest does not;
#   - rename, remove, mkdir, create/truncate: nothing happens (rename is atomic: a cut just
#     after it completed is the same as a cut at the next operation).
# Data of write() calls that completed is persistent (there is no cache to lose). Once cut,
# every operation (reads included) raises PowerCut until power_on() ("reboot"); files opened
# before the cut stay dead. Build new objects over the same SimFlash to see what survived.
# capacity (bytes, optional) makes writes beyond it fail with OSError(ENOSPC).
from hal.contracts import PowerCut

_ENOENT = 2
_EEXIST = 17
_EISDIR = 21
_ENOTDIR = 20
_ENOTEMPTY = 39
_ENOSPC = 28
_EBADF = 9


def _norm(path):
    if not isinstance(path, str) or not path:
        raise OSError(_ENOENT, "bad path {!r}".format(path))
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _parent(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "/"


class _File:
    def __init__(self, flash, path, data, mode):
        self._flash = flash
        self._gen = flash.generation
        self.name = path
        self._data = data  # the file's bytearray (its "inode": survives rename)
        self._mode = mode
        self._pos = len(data) if mode == "ab" else 0
        self.closed = False

    def _alive(self):
        self._flash._alive()
        if self._gen != self._flash.generation:
            raise PowerCut("file opened before the power cut")
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def read(self, n=-1):
        self._alive()
        if self._mode not in ("rb", "r+b"):
            raise OSError(_EBADF, "not readable")
        data = self._data
        end = len(data) if n is None or n < 0 else min(len(data), self._pos + n)
        out = bytes(data[self._pos : end])
        self._pos = max(self._pos, end)
        return out

    def readinto(self, buf):
        chunk = self.read(len(buf))
        buf[: len(chunk)] = chunk
        return len(chunk)

    def write(self, b):
        self._alive()
        if self._mode == "rb":
            raise OSError(_EBADF, "not writable")
        b = bytes(b)
        flash = self._flash
        if self._mode == "ab":
            self._pos = len(self._data)
        grow = self._pos + len(b) - len(self._data)
        if flash.capacity is not None and grow > 0 and flash.used() + grow > flash.capacity:
            raise OSError(_ENOSPC, "flash full")
        if flash._mutate():
            b = b[: len(b) // 2]  # torn: the first half reached the flash
            self._put(b)
            raise PowerCut("power cut during write")
        self._put(b)
        return len(b)

    def _put(self, b):
        data = self._data
        pos = self._pos
        if pos > len(data):
            data.extend(bytes(pos - len(data)))
        data[pos : pos + len(b)] = b
        self._pos = pos + len(b)

    def seek(self, offset, whence=0):
        self._alive()
        if whence == 1:
            offset += self._pos
        elif whence == 2:
            offset += len(self._data)
        if offset < 0:
            raise OSError(22, "negative seek")
        self._pos = offset
        return offset

    def tell(self):
        self._alive()
        return self._pos

    def flush(self):
        self._alive()

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class SimFlash:
    def __init__(self, capacity=None):
        self.capacity = capacity
        self.writes = 0  # mutating operations so far (the one cut included)
        self.cuts = 0  # power cuts so far
        self.generation = 0  # boots so far
        self.off = False
        self._cut_at = None
        self._files = {}  # path -> bytearray
        self._dirs = {"/"}

    # ------------------------------------------------------------ power

    def cut_at(self, n):
        """Cut the power at mutating operation number n (compare with `writes`); None cancels."""
        self._cut_at = n

    def cut_after(self, k):
        """Cut the power at the k-th mutating operation from now (k >= 1)."""
        self._cut_at = self.writes + k

    def cut_now(self):
        self._cut_at = None
        self.off = True
        self.cuts += 1

    def power_on(self):
        self.off = False
        self._cut_at = None
        self.generation += 1

    def _alive(self):
        if self.off:
            raise PowerCut("flash is powered off")

    def _mutate(self):
        # Count one mutating operation; True if the power is cut at this one.
        self._alive()
        self.writes += 1
        if self._cut_at is not None and self.writes >= self._cut_at:
            self.cut_now()
            return True
        return False

    def _cut(self, what):
        if self._mutate():
            raise PowerCut("power cut at " + what)

    # ------------------------------------------------------------ inspection

    def used(self):
        total = 0
        for data in self._files.values():
            total += len(data)
        return total

    def files(self):
        """{path: bytes} of everything on the flash (for tests)."""
        out = {}
        for p, d in self._files.items():
            out[p] = bytes(d)
        return out

    # ------------------------------------------------------------ the fs interface

    def _need_dir(self, path):
        if path not in self._dirs:
            raise OSError(_ENOENT if path not in self._files else _ENOTDIR, path)

    def open(self, path, mode):  # the mode is required, as on the boards' file systems (hal.fs_storage)
        self._alive()
        path = _norm(path)
        if mode not in ("rb", "wb", "ab", "r+b"):
            raise ValueError("mode {!r} not supported".format(mode))
        if path in self._dirs:
            raise OSError(_EISDIR, path)
        data = self._files.get(path)
        if mode in ("rb", "r+b"):
            if data is None:
                raise OSError(_ENOENT, path)
        else:
            self._need_dir(_parent(path))
            if data is None or mode == "wb":
                self._cut("create " + path)
                data = bytearray()
                self._files[path] = data  # a truncate makes a fresh inode too
        return _File(self, path, data, mode)

    def rename(self, src, dst):
        self._alive()
        src = _norm(src)
        dst = _norm(dst)
        if src not in self._files:
            raise OSError(_ENOENT, src)
        if dst in self._dirs:
            raise OSError(_EISDIR, dst)
        self._need_dir(_parent(dst))
        self._cut("rename " + src)
        self._files[dst] = self._files.pop(src)

    def remove(self, path):
        self._alive()
        path = _norm(path)
        if path not in self._files:
            raise OSError(_ENOENT, path)
        self._cut("remove " + path)
        del self._files[path]

    def mkdir(self, path):
        self._alive()
        path = _norm(path)
        if path in self._dirs or path in self._files:
            raise OSError(_EEXIST, path)
        self._need_dir(_parent(path))
        self._cut("mkdir " + path)
        self._dirs.add(path)

    def rmdir(self, path):
        self._alive()
        path = _norm(path)
        self._need_dir(path)
        if path == "/" or self.listdir(path):
            raise OSError(_ENOTEMPTY, path)
        self._cut("rmdir " + path)
        self._dirs.remove(path)

    def listdir(self, path="/"):
        self._alive()
        path = _norm(path)
        self._need_dir(path)
        prefix = path if path.endswith("/") else path + "/"
        out = []
        for p in list(self._files) + list(self._dirs):
            if p != prefix and p.startswith(prefix) and "/" not in p[len(prefix) :]:
                out.append(p[len(prefix) :])
        out.sort()
        return out

    def exists(self, path):
        self._alive()
        path = _norm(path)
        return path in self._files or path in self._dirs

    def isdir(self, path):
        self._alive()
        return _norm(path) in self._dirs

    def size(self, path):
        self._alive()
        data = self._files.get(_norm(path))
        if data is None:
            raise OSError(_ENOENT, path)
        return len(data)

    def sync_file(self, f):
        f.flush()
