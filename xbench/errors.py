"""User-facing errors: one paragraph naming the thing and the fix; the CLI maps them to exit code 2."""


class XbenchError(Exception):
    """An error caused by input or environment, not by a bug in xbench."""
