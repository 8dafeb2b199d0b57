"""User-facing errors: one paragraph naming the thing and the fix; the CLI maps them to exit code 2."""


class XbenchError(Exception):
    """An error caused by input or environment, not by a bug in xbench."""


class DataUnavailable(XbenchError):
    """The task's data is not on this machine (e.g. a hub-only corpus offline): the task is skipped, not failed.

    The message must give the exact command that supplies the data.
    """
