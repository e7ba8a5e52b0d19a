"""What is flashed, in one digest (agent/flashed.py, the "flashed" request `dbch flash` asks before
a hand-over): over real files on either runtime, each file's path and SHA-256 in the order the host
computes them (host_tools.firmware.warm); a file changed, missing or left over changes it."""

import hashlib
import unittest

from agent import flashed
from hal.fs_storage import FileStorage, OsFs
from tests.kits.tempdirs import rm_tree, temp_dir

FILES = {"slots/a/agent/b.mpy": b"B" * 700, "slots/a/agent/a.mpy": b"A", "main.py": b"start()", "fw.json": b"{}"}
DIRS = ["slots/a/agent", "slots/a/hal"]
ROOT_FILES = ["main.py", "fw.json", "gone.bin"]


def _expected(files):
    # the definition: the folders' files by name, then the root files given that are there
    h = hashlib.sha256()
    paths = sorted(p for p in files if p.startswith("slots/a/agent/")) + [p for p in ROOT_FILES if p in files]
    for p in paths:
        h.update(p.encode() + b"\n" + hashlib.sha256(files[p]).digest())
    return h.digest(), len(paths)


class FlashedTest(unittest.TestCase):
    def setUp(self):
        import os

        self.root = temp_dir("dbch_flashed_")
        for d in ("slots", "slots/a", "slots/a/agent", "slots/a/agent/sub", "data"):
            os.mkdir(self.root + "/" + d)
        for path, data in FILES.items():
            with open(self.root + "/" + path, "wb") as f:
                f.write(data)

    def tearDown(self):
        rm_tree(self.root)

    def _digest(self):
        return flashed.digest(OsFs(), self.root + "/", DIRS, ROOT_FILES)

    def test_the_digest_covers_each_file_there_by_path_and_hash(self):
        # a folder inside a folder (sub) and one that is not there (hal) are passed over
        self.assertEqual(self._digest(), _expected(FILES))

    def test_a_file_changed_missing_or_left_over_changes_it(self):
        import os

        with open(self.root + "/main.py", "wb") as f:
            f.write(b"start() ")
        self.assertNotEqual(self._digest()[0], _expected(FILES)[0])
        os.remove(self.root + "/main.py")
        self.assertEqual(self._digest(), _expected({p: d for p, d in FILES.items() if p != "main.py"}))
        with open(self.root + "/slots/a/agent/c.mpy", "wb") as f:
            f.write(b"C")
        self.assertEqual(self._digest()[1], 4)

    def test_the_request_answers_from_the_storages_parent(self):
        storage = FileStorage(self.root + "/data")
        rc, data, err = flashed.handle(storage, {"dirs": DIRS, "files": ROOT_FILES})
        self.assertEqual((rc, err), ("I0", None))
        self.assertEqual((data["sha"], data["n"]), _expected(FILES))
        rc, data, err = flashed.handle(storage, {"dirs": "slots", "files": []})
        self.assertEqual((rc, data), ("E49", None))
        self.assertIn("list of paths", err)


if __name__ == "__main__":
    unittest.main()
