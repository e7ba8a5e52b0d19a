"""The encoders of `dbch flash`'s compressed copy (host_tools.firmware.transfer): raw deflate
streams by zlib, or by zopfli (about 2 % smaller, a hundred times slower: worth it on a slow line;
made once, kept in dbch's cache by what it compresses, and made on a thread beside other work).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import zlib
from pathlib import Path

from host_tools.files import write_file
from host_tools.paths import cache_dir

LEVEL = 9
ZOPFLI_ITERATIONS = 3  # 1: most of what it gains over zlib; 3: 0.3 % smaller again, for 0.04 s more on its thread


def zlib_stream(raw: bytes, wbits: int) -> bytes:
    """raw as one raw deflate stream for a window of 2**wbits, by zlib at LEVEL."""
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, -wbits, 9)
    return c.compress(raw) + c.flush()


def zopfli_stream(raw: bytes) -> bytes | None:
    """raw as one raw deflate stream for a 32 KB window (zopfli's, fixed), by zopfli; None when
    zopfli is not installed. Kept in dbch's cache under the SHA-256 of raw, and read back only
    when it decompresses to raw."""
    try:
        from zopfli.zopfli import compress
    except ImportError:
        return None
    cached = zopfli_kept(raw)
    with _zopfli_lock(cached.name):
        with contextlib.suppress(OSError, zlib.error):
            data = cached.read_bytes()
            if zlib.decompressobj(-15).decompress(data) == raw:
                return data
        # a zlib stream (2 bytes of header, 4 of Adler-32 at the end) around the raw one
        data = compress(raw, numiterations=ZOPFLI_ITERATIONS)[2:-4]
        with contextlib.suppress(OSError):
            write_file(cached, data)
        return data


def zopfli_kept(raw: bytes) -> Path:
    """Where zopfli_stream(raw) is kept."""
    key = hashlib.sha256(b"zopfli %d\n" % ZOPFLI_ITERATIONS + raw).hexdigest()
    return cache_dir("deflate", key[:2], key[2:] + ".bin")


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _zopfli_lock(key: str) -> threading.Lock:
    """One lock a stream: boards flashed side by side with the same files wait for one encoding."""
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class ZopfliBeside:
    """zopfli_stream(raw) made on a thread (zopfli lets go of the GIL) while the loader is pasted:
    on a slow line the paste hides most of its time; on a fast one it is not waited for."""

    def __init__(self, raw: bytes):
        self._result: bytes | None = None
        self._thread = threading.Thread(target=self._run, args=(raw,), name="dbch-zopfli", daemon=True)
        self._thread.start()

    def _run(self, raw: bytes) -> None:
        with contextlib.suppress(Exception):  # a broken encoder: zlib's stream is used
            self._result = zopfli_stream(raw)

    def result(self) -> bytes | None:
        self._thread.join()
        return self._result
