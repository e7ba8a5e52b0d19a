# The first paste of `dbch flash`'s compressed copy (host_tools/firmware/transfer.py has the
# host's side): it takes the loader (host_tools/onboard/file_loader.py, as raw deflate) off the
# line as raw bytes, decompresses it and runs it. Raw bytes, where a base64 text in the paste
# would cost a third more on the line; and not through the raw REPL, which takes only text.
#
# The host pastes this file's text (its comment lines left out, one space of indentation a level)
# followed by "boot(N, WBITS, PIECE, IDLE_MS, USE_DEFLATE)" and "del boot". boot() says "DBCHLOAD 0"
# at once on a board without `deflate` (or when USE_DEFLATE is false) and reads nothing. Else it
# reads the N bytes of the loader's deflate stream (window 2**WBITS) in pieces of PIECE bytes,
# saying "." before each piece it is ready for: the host sends a piece only once told, so at most
# two pieces are on their way and a small receive buffer never overflows. The interrupt character
# is off while it reads (the stream carries any byte, 0x03 included) and back on after. Nothing
# heard for IDLE_MS (the host is gone): it stops reading, the stream cut short fails to
# decompress, and the raw REPL has the line again.


def boot(n, w, k, t, u):
    # n: the stream's bytes, w: its window (log2), k: PIECE, t: IDLE_MS, u: USE_DEFLATE (short
    # names: this text is pasted whole)
    import sys

    try:
        import deflate as d
    except ImportError:
        d = 0
    if not (d and u):
        print("DBCHLOAD 0")
        return
    import select

    import micropython as m

    i = sys.stdin.buffer
    o = sys.stdout.buffer
    p = select.poll()
    p.register(i, 1)
    b = bytearray(n)
    v = memoryview(b)
    m.kbd_intr(-1)
    o.write(b".")
    for j in range(0, n, k):
        o.write(b".")
        # nothing came: the stream is cut short, and decompressing it fails and says so
        if not p.poll(t):
            break
        i.readinto(v[j : j + k])
    m.kbd_intr(3)
    # the loader's names are its own: the REPL's globals keep none of them
    exec(d.DeflateIO(__import__("io").BytesIO(b), d.RAW, w).read(), {})
