# What the tests share, imported as `from tests.kits.NAME import ...`:
#   portable (CPython and the MicroPython unix port): hubkit (a simulated hub and its
#   configuration), fwkit (firmware images and a device that boots them), fuzzkit (inputs for the
#   link and the rule every answer must keep), endurance (a simulated stretch of a hub's life),
#   fakes_spi (the radio chips at the SPI bus), vectorkit (tests/vectors/NAME.json);
#   CPython only: footprintkit (bench/bench_footprint.py, the agent as a board runs it),
#   ipseckit (network namespaces and strongSwan for the IPsec tests).
