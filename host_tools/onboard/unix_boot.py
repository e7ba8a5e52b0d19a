"""The virtual board's boot, run by the MicroPython unix port at each start of its interpreter:

    micropython [-X heapsize=N] -i unix_boot.py FS MODE HARD ROM_ADDRESS ROM_SIZE HW_ADDRESS HW_SIZE

FS is the flash directory (mounted at `/`, the cwd), MODE is "raw" after a soft reset in the raw
REPL (main.py is skipped) or "friendly", HARD is the exit status that machine.reset() ends the
interpreter with (the launcher, host_tools.servers.vboard_relay, reads it as a hard reset).
ROM_ADDRESS and ROM_SIZE are where the board's ROMFS image (its flash's dbch.romfs) is held, outside
the heap (host_tools.servers.unix_port; 0 0: none): it is mounted at /rom, as a port mounts its
ROMFS partition, and what it holds is imported in place. HW_ADDRESS and HW_SIZE are the board's
hardware (the simulated world: host_tools.firmware.hardware), a ROMFS image of its own, mounted at
/hw and made importable by its own names, as a port's built-in modules are: MicroPython finds a
package's submodule in its parent's folder only, so hal.sim in /hw/hal/sim would never be found
under the firmware's hal. Each package and module /hw holds under a top-level package (hal.sim,
boards.simchips) is imported from /hw alone and kept in sys.modules, the top-level package then
forgotten: the firmware's own is imported when asked for, and an import of hal.sim.radio finds
hal.sim in sys.modules and radio in its folder. Like a built-in module, such a module has no
__file__: the bootloader, which forgets what an earlier boot loaded from a slot, keeps it. It runs boot.py then main.py in the REPL's
globals, as a board does; -i leaves the REPL running after it.
"""


def _print_exc(sys, e):
    # as a board prints it: without this boot code's own frame
    import io

    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = buf.getvalue().split("\n")
    if len(lines) > 2 and "in _vboard_boot" in lines[1]:
        del lines[1]
    sys.stdout.write("\n".join(lines))


def _hardware(sys, os, vfs, uctypes, hw):
    # the board's hardware mounted at /hw, and what it holds under a top-level package imported
    try:
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(hw[0], hw[1])), "/hw")
        sys.path[:] = ["/hw"]
        tops = os.listdir("/hw")
        for top in tops:
            for name in os.listdir("/hw/" + top):
                name = top + "." + name.split(".")[0]
                __import__(name)
                del sys.modules[name].__file__  # as a built-in's: no slot's (agent/boot_main.py)
        for top in tops:
            del sys.modules[top]
    except Exception as e:
        print("vboard: hardware not mounted at /hw:", repr(e))


def _vboard_boot(fs, raw, hard, rom, hw):
    import os
    import sys

    try:
        import vfs

        os.umount("/")
        os.mount(vfs.VfsPosix(fs), "/")
        os.chdir("/")
    except Exception as e:
        print("vboard: flash not mounted at /:", repr(e))
    import uctypes

    if rom[1]:
        try:
            vfs.mount(vfs.VfsRom(uctypes.bytearray_at(rom[0], rom[1])), "/rom")
        except Exception as e:
            print("vboard: ROMFS image not mounted at /rom:", repr(e))
    if hw[1]:
        _hardware(sys, os, vfs, uctypes, hw)
    sys.path[:] = ["", ".frozen", "/lib"]
    try:
        import machine as _m

        class machine:
            def __getattr__(self, name):
                return getattr(_m, name)

            def reset(self):
                raise SystemExit(hard)

        sys.modules["machine"] = machine()
    except ImportError:
        pass
    g = globals()
    for f in ("boot.py", "main.py"):
        if raw and f == "main.py":
            break
        try:
            os.stat(f)
        except OSError:
            continue
        try:
            execfile(f, g)  # noqa: F821 - a MicroPython builtin
        except SystemExit:
            raise
        except BaseException as e:
            _print_exc(sys, e)


def _boot_args():
    # FS MODE HARD ROM_ADDRESS ROM_SIZE HW_ADDRESS HW_SIZE, taken off sys.argv: the board's
    # programs see the unix port's own argv
    import sys

    fs, mode, hard, addr, size, hw_addr, hw_size = (sys.argv[1:8] + ["0"] * 4)[:7]
    del sys.argv[1:]
    return fs, mode == "raw", int(hard), (int(addr), int(size)), (int(hw_addr), int(hw_size))


if __name__ == "__main__":
    _vboard_boot(*_boot_args())
    del _vboard_boot, _print_exc, _boot_args, _hardware
