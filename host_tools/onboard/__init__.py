"""Programs the host runs on a board: MicroPython source files that host tools start on a board
(or on the unix port behind a virtual board), kept as real modules so that mpy-cross
(`python -m host_tools.firmware.build --check`) and ruff check them like the portable code.
Nothing here runs on the host: each file says how it is started and how it gets its parameters.
"""
