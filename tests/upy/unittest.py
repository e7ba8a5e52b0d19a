# A small unittest for the MicroPython unix port, which ships none.
# Only what the portable tests use; CPython runs the same files with the real unittest (via pytest).


class SkipTest(Exception):
    pass


class _AssertRaises:
    def __init__(self, exc):
        self.expected = exc
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError("{} not raised".format(_name(self.expected)))
        if issubclass(exc_type, self.expected):
            self.exception = exc
            return True
        return False


class _SubTest:
    def __init__(self, case, params):
        self.case = case
        self.params = params

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, AssertionError):
            raise AssertionError("{} [{}]".format(exc, self.params))
        return False


def _name(exc):
    if isinstance(exc, tuple):
        return "/".join(e.__name__ for e in exc)
    return exc.__name__


class TestCase:
    def setUp(self):
        pass

    def tearDown(self):
        pass

    def subTest(self, msg=None, **params):
        return _SubTest(self, msg if msg is not None else params)

    def skipTest(self, reason):
        raise SkipTest(reason)

    def fail(self, msg=None):
        raise AssertionError(msg or "fail")

    def assertEqual(self, a, b, msg=None):
        if not a == b:
            raise AssertionError(msg or "{!r} != {!r}".format(a, b))

    def assertNotEqual(self, a, b, msg=None):
        if a == b:
            raise AssertionError(msg or "{!r} == {!r}".format(a, b))

    def assertTrue(self, x, msg=None):
        if not x:
            raise AssertionError(msg or "{!r} is not true".format(x))

    def assertFalse(self, x, msg=None):
        if x:
            raise AssertionError(msg or "{!r} is not false".format(x))

    def assertIs(self, a, b, msg=None):
        if a is not b:
            raise AssertionError(msg or "{!r} is not {!r}".format(a, b))

    def assertIsNot(self, a, b, msg=None):
        if a is b:
            raise AssertionError(msg or "unexpectedly identical: {!r}".format(a))

    def assertIsNone(self, x, msg=None):
        self.assertIs(x, None, msg)

    def assertIsNotNone(self, x, msg=None):
        if x is None:
            raise AssertionError(msg or "unexpectedly None")

    def assertIsInstance(self, x, cls, msg=None):
        if not isinstance(x, cls):
            raise AssertionError(msg or "{!r} is not a {}".format(x, cls))

    def assertNotIsInstance(self, x, cls, msg=None):
        if isinstance(x, cls):
            raise AssertionError(msg or "{!r} is a {}".format(x, cls))

    def assertIn(self, a, b, msg=None):
        if a not in b:
            raise AssertionError(msg or "{!r} not in {!r}".format(a, b))

    def assertNotIn(self, a, b, msg=None):
        if a in b:
            raise AssertionError(msg or "{!r} in {!r}".format(a, b))

    def assertLess(self, a, b, msg=None):
        if not a < b:
            raise AssertionError(msg or "{!r} not < {!r}".format(a, b))

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            raise AssertionError(msg or "{!r} not <= {!r}".format(a, b))

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            raise AssertionError(msg or "{!r} not > {!r}".format(a, b))

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            raise AssertionError(msg or "{!r} not >= {!r}".format(a, b))

    def assertAlmostEqual(self, a, b, places=7, msg=None):
        if round(abs(a - b), places) != 0:
            raise AssertionError(msg or "{!r} != {!r} to {} places".format(a, b, places))

    def assertRaises(self, exc, func=None, *args, **kwargs):
        ctx = _AssertRaises(exc)
        if func is None:
            return ctx
        with ctx:
            func(*args, **kwargs)
        return ctx


def skip(reason):
    def deco(f):
        def skipped(*a, **k):
            raise SkipTest(reason)

        return skipped

    return deco


def skipIf(cond, reason):
    if cond:
        return skip(reason)
    return lambda f: f


def skipUnless(cond, reason):
    return skipIf(not cond, reason)
