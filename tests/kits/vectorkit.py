# Test vectors kept as data, tests/vectors/NAME.json, read alike on CPython and MicroPython:
#   {"about": where they come from and what the fields hold, "vectors": [{field: value}, ...]}
# Byte strings and big numbers are hex text: each test decodes what it uses.
import json


def path(name):
    here = __file__.replace("\\", "/")
    i = here.rfind("/")
    return (here[:i] if i >= 0 else ".") + "/../vectors/" + name + ".json"


def load(name):
    """The whole file NAME.json (json reads it from the open file, without a copy of its text)."""
    with open(path(name)) as f:
        return json.load(f)
