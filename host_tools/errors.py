"""The one family of errors the host tools raise for a failure the user can act on.

Library code raises a DbchError (or a kind of it) whose message says what went wrong and what to
do; the `dbch` command prints it as "dbch: message" and exits with its `code` (1 unless set).
Programs that use host_tools as a library catch DbchError to catch them all."""


class DbchError(Exception):
    """A failure the user can act on; the message says what to do."""

    code = 1
