# Mount a ROMFS image kept in a file on the board's flash (host_tools.firmware.romfs), for a
# board whose port has vfs.VfsRom (MicroPython 1.25 and later) but no ROMFS partition: the unix
# port, the virtual board. A board with a partition has its image mounted at /rom by the port.
#
# A main.py starts with this file's text followed by the lines "mount_romfs(IMAGE, AT)" and
# "del mount_romfs", the arguments as literals, before anything imports the agent: the image is
# read into one buffer (its own block on the heap, made while the heap is still empty), mounted
# at AT and AT is put first on sys.path, so the modules it holds are imported from it and run in
# place. An image that is not there, or a port without vfs.VfsRom, leaves the board as it is
# (its modules are then imported from the flash's files, if it has them) and says so.


def mount_romfs(image, at):
    import os
    import sys

    try:
        import vfs

        size = os.stat(image)[6]
        buf = bytearray(size)
        with open(image, "rb") as f:
            if f.readinto(buf) != size:
                raise OSError("short read")
        vfs.mount(vfs.VfsRom(buf), at)
    except (AttributeError, ImportError, OSError) as e:
        print("romfs: {} not mounted at {}: {!r}".format(image, at, e))
        return None
    sys.path.insert(0, at)
    return size
