"""Exceptions shared by every subpackage (importable with no third-party dependency)."""


class UserError(Exception):
    """A problem with the user's input or setup (a bad file, an unknown name, a missing device).

    The CLI prints it as ``error: <message>`` and exits with code 2, without a traceback, so the
    message must say what is wrong and what to do.
    """
