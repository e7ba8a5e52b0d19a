# The one module that papers over CPython / MicroPython differences, and with boards.load the
# only place that looks at the runtime: the rest of agent/ and hal/ is handed what it needs here.
# Feature detection only (try/except ImportError, hasattr), never version checks.
import gc as _gc
import sys as _sys

# Whether a module's code lives on the heap (MicroPython: loading one costs heap, unloading it
# and collecting gives that back). CPython keeps code elsewhere.
CODE_ON_HEAP = _sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:
    import time as _time

    _TICKS_PERIOD = 1 << 30
    _TICKS_HALF = _TICKS_PERIOD >> 1

    def ticks_ms():
        return int(_time.monotonic() * 1000) & (_TICKS_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_TICKS_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


# The console's interrupt character: kbd_intr(-1) turns it off (0x03 then reaches sys.stdin as
# data), kbd_intr(3) turns Ctrl-C back on. Only MicroPython has it; elsewhere a no-op.
try:
    from micropython import kbd_intr

    _REPL_ON_STDIN = True
except ImportError:
    _REPL_ON_STDIN = False

    def kbd_intr(c):
        pass


def console_input():
    """The byte stream the REPL's console reads (MicroPython's sys.stdin, the line kbd_intr
    guards), or None: CPython has no REPL on its standard input to share it with."""
    if not _REPL_ON_STDIN:
        return None
    import sys

    return sys.stdin.buffer


# The port's clock: sleep_ms, and the year its time.time() counts from (2000 on some MicroPython
# ports, 1970 on the others and on CPython).
try:
    from time import sleep_ms
except ImportError:

    def sleep_ms(ms):
        import time

        time.sleep(ms / 1000)


def epoch_year():
    import time

    return time.gmtime(0)[0]


# A file's bytes on the medium: os.fsync where the port has it (CPython); MicroPython's VFS
# commits a file's blocks when it is closed.
def fsync(f):
    import os

    if hasattr(os, "fsync"):
        os.fsync(f.fileno())


# TLS: CPython's ssl (OpenSSL: SSLContext.minimum_version) or MicroPython's mbedTLS (the C
# module `tls` behind ssl.py from 1.23, else ssl itself); None on a port built without TLS.
# Imported on first use only: a board that never opens the triage link never loads it.
def tls_modules():
    """(ssl module or None, True if it is OpenSSL's, the mbedTLS module or None)."""
    try:
        import ssl
    except ImportError:
        return None, False, None
    if hasattr(ssl, "SSLContext") and hasattr(ssl.SSLContext, "minimum_version"):
        return ssl, True, None
    try:
        import tls
    except ImportError:
        tls = ssl
    return ssl, False, tls


def raw_inflater(src, wbits):
    """A reader of the raw deflate stream the stream src gives (window 2**wbits) that reads src
    only as far as the bytes asked of it need: MicroPython's deflate.DeflateIO, else hal.zinflate
    (zlib); None if the runtime has neither. Imported at the first call (compressed firmware
    staging), not at boot."""
    try:
        from deflate import RAW, DeflateIO
    except ImportError:
        try:
            from hal.zinflate import RAW, DeflateIO
        except ImportError:
            return None
    return DeflateIO(src, RAW, wbits)


try:
    from sys import print_exception
except ImportError:
    import traceback as _tb

    def print_exception(exc, file=None):
        _tb.print_exception(type(exc), exc, exc.__traceback__, file=file)


def bit_length(n):
    """int.bit_length for a non-negative int (MicroPython has no int.bit_length)."""
    n = abs(n)
    b = 0
    while n >= 0x10000:
        n >>= 16
        b += 16
    while n:
        n >>= 1
        b += 1
    return b


def hexstr(data):
    """Lower-case hex of bytes (MicroPython has no .hexdigest()/.hex() everywhere)."""
    from binascii import hexlify

    return hexlify(data).decode()


def from_signed_bytes_be(b):
    """int.from_bytes(b, 'big', signed=True) without keyword arguments."""
    v = int.from_bytes(b, "big")
    if b and b[0] & 0x80:
        v -= 1 << (8 * len(b))
    return v


try:
    from os import replace as _replace
except ImportError:
    _replace = None


def rename_over(src, dst):
    """Atomic rename that replaces dst (os.rename on MicroPython's VFS replaces; CPython needs os.replace)."""
    import os

    if _replace is not None:
        _replace(src, dst)
    else:
        os.rename(src, dst)


def path_exists(path):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False


def sync():
    import os

    if hasattr(os, "sync"):
        os.sync()


def unload(name):
    """Forget module `name` (in sys.modules and in its package) so the GC can take back its code:
    on MicroPython a module's bytecode lives on the heap. Whoever still holds the module, one of
    its functions or an instance of its classes keeps all of it. The next import runs the module
    again: a new module object, its state and classes new (an exception class held from before is
    not the one the new module raises). The same on CPython, so that code that unloads runs there
    as it runs on a board."""
    _sys.modules.pop(name, None)
    i = name.rfind(".")
    if i > 0:
        parent = _sys.modules.get(name[:i])
        if parent is not None and name[i + 1 :] in parent.__dict__:
            delattr(parent, name[i + 1 :])


def collect():
    """Give the blocks of what is garbage back now, where code lives on the heap (an unloaded
    module, a failed step's leftovers): before what is kept is allocated. A no-op on CPython."""
    if CODE_ON_HEAP:
        _gc.collect()


def collect_every(nbytes):
    """Run the GC also after every nbytes allocated, not only when an allocation fails, where the
    runtime can (MicroPython's gc.threshold); a no-op elsewhere (CPython's GC counts objects)."""
    threshold = getattr(_gc, "threshold", None)
    if threshold is not None:
        threshold(nbytes)


try:
    from os import urandom
except ImportError:  # a port without a hardware random source in os

    def urandom(n):
        import random

        return bytes(random.getrandbits(8) for _ in range(n))


try:
    from time import sleep_ms
except ImportError:

    def sleep_ms(ms):
        import time

        time.sleep(ms / 1000)
