"""Host tools for dbch (CPython only): the `dbch` command and what it drives."""
