# Simulated hardware for CPython and the MicroPython unix port (the virtual board):
#   clock.FastForwardClock  the virtual board's clock: real time a simulation may move forward
#   vclock.VirtualClock     a clock that only moves when told to (tests, host tools)
#   radio.Medium            channels with background noise, injected frames, a recent ring
#   radio.SimRadio          a Radio on a Medium (868 or 915 module)
#   chips                   radio chips at their SPI bus (the real drivers run on them)
#   flash.SimFlash          an in-memory file system with power-cut injection (for hal.fs_storage)
# Import the submodule you need; nothing is built at import time.
