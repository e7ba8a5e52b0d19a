# A temporary directory on either runtime, and its removal (CPython has tempfile and shutil,
# MicroPython's unix port has neither): for the portable tests that use a real file system.
import os

from hal.compat import hexstr


def temp_dir(prefix):
    """A new empty directory under /tmp named PREFIX + random hex."""
    try:
        import tempfile

        return tempfile.mkdtemp(prefix=prefix)
    except ImportError:  # MicroPython
        path = "/tmp/" + prefix + hexstr(os.urandom(6))
        os.mkdir(path)
        return path


def rm_tree(path):
    """Remove path and everything in it."""
    for name in os.listdir(path):
        full = path + "/" + name
        if os.stat(full)[0] & 0x4000:
            rm_tree(full)
        else:
            os.remove(full)
    os.rmdir(path)
