# Storage on a real file system: one file per record under a root directory.
#
# write(name, data) writes "name.tmp", then renames it over "name" (atomic on littlefs, FAT
# via VfsFat, and POSIX), so after a power cut the record holds the old or the new bytes. A
# leftover "name.tmp" is an incomplete write: read() and remove() delete it, names() never
# lists it, cleanup() sweeps them all.
# Record names: 1-64 characters of [A-Za-z0-9._-], not "." or "..", not ending in ".tmp"
# (ValueError otherwise). The root should hold records only.
#
# File-system operations go through a small `fs` object so a simulated flash
# (hal.sim.flash.SimFlash) can stand in for the real one:
#   open(path, mode) rename(src, dst) remove(path) listdir(path) mkdir(path)
#   exists(path) size(path) sync_file(f)
# OsFs is that object over `os` and the builtin open (no os.path: MicroPython has none).
import os

from hal.compat import const, fsync, path_exists, rename_over
from hal.contracts import Storage

_MAX_NAME = const(64)
_ENOENT = const(2)


def check_name(name):
    """Raise ValueError unless name is a valid record name."""
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME:
        raise ValueError("record name must be 1-{} characters, not {!r}".format(_MAX_NAME, name))
    if name in (".", "..") or name.endswith(".tmp"):
        raise ValueError("record name {!r} is reserved".format(name))
    for c in name.encode():  # bytes: MicroPython interns each character a str yields, for good
        if c not in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-":
            raise ValueError("record name {!r}: only A-Z a-z 0-9 . _ - allowed".format(name))


class OsFs:
    def open(self, path, mode):
        return open(path, mode)

    def rename(self, src, dst):
        rename_over(src, dst)

    def remove(self, path):
        os.remove(path)

    def listdir(self, path):
        return os.listdir(path)

    def mkdir(self, path):
        os.mkdir(path)

    def exists(self, path):
        return path_exists(path)

    def size(self, path):
        return os.stat(path)[6]

    def sync_file(self, f):
        f.flush()
        fsync(f)


class FileStorage(Storage):
    def __init__(self, root, fs=None):
        self.fs = fs if fs is not None else OsFs()
        if not isinstance(root, str) or not root:
            raise ValueError("storage root must be a path, not {!r}".format(root))
        root = root.rstrip("/") or "/"
        self.root = root
        self._prefix = root if root == "/" else root + "/"
        if not self.fs.exists(root):  # make it and any missing parents
            path = "/" if root[0] == "/" else ""
            for part in root.split("/"):
                if not part:
                    continue
                path = path + part if (not path or path.endswith("/")) else path + "/" + part
                if not self.fs.exists(path):
                    self.fs.mkdir(path)

    def _path(self, name):
        check_name(name)
        return self._prefix + name

    def _drop_tmp(self, path):
        tmp = path + ".tmp"
        if self.fs.exists(tmp):
            self.fs.remove(tmp)

    def read(self, name):
        path = self._path(name)
        self._drop_tmp(path)
        try:
            f = self.fs.open(path, "rb")
        except OSError as e:
            if e.errno == _ENOENT:
                return None
            raise
        try:
            return f.read()
        finally:
            f.close()

    def write(self, name, data):
        path = self._path(name)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("record data is bytes, not {}".format(type(data).__name__))
        fs = self.fs
        tmp = path + ".tmp"
        try:
            f = fs.open(tmp, "wb")
            try:
                if len(data):
                    f.write(data)
                fs.sync_file(f)
            finally:
                f.close()
            fs.rename(tmp, path)
        except OSError:  # e.g. a full file system: leave no temporary behind
            try:
                fs.remove(tmp)
            except OSError:
                pass
            raise

    def remove(self, name):
        """Remove the record; False if there was none."""
        path = self._path(name)
        self._drop_tmp(path)
        if not self.fs.exists(path):
            return False
        self.fs.remove(path)
        return True

    def exists(self, name):
        return self.fs.exists(self._path(name))

    def size(self, name):
        """Size in bytes of a record or blob, or None if there is none."""
        path = self._path(name)
        if not self.fs.exists(path):
            return None
        return self.fs.size(path)

    def names(self):
        out = []
        for n in self.fs.listdir(self.root):
            if n.endswith(".tmp"):
                continue
            try:
                check_name(n)
            except ValueError:
                continue
            out.append(n)
        out.sort()
        return out

    def cleanup(self):
        """Delete every leftover temporary (incomplete write); how many there were."""
        count = 0
        for n in self.fs.listdir(self.root):
            if n.endswith(".tmp"):
                self.fs.remove(self._prefix + n)
                count += 1
        return count

    def open_blob(self, name, mode):
        modes = ("rb", "wb", "ab", "r+b")
        if mode not in modes:
            raise ValueError("blob mode must be one of {}, not {!r}".format(modes, mode))
        return self.fs.open(self._path(name), mode)
