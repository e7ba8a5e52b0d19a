# Simulated hardware for CPython and the MicroPython unix port (the virtual board):
#   clock.VirtualClock  a clock that only moves when told to
#   radio.Medium        channels with scripted noise, interferers, injected frames, airtime log
#   radio.SimRadio      a Radio on a Medium (868 or 915 module)
#   flash.SimFlash      an in-memory file system with power-cut injection (for hal.fs_storage)
# Import the submodule you need; nothing is built at import time.
