"""Programs the host runs on a board (MicroPython), not imported by the host."""
