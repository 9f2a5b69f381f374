"""Errors that reach the performer as one line on stderr."""


class UserError(Exception):
    """Bad input (setlist, MIDI file, argument, missing device named explicitly).

    The CLI prints ``str(error)`` as one line and exits with code 2; no traceback.
    """
