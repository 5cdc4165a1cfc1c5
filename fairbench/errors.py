"""One error type for every user-facing mistake.

The CLI turns a FairbenchError into a single line and exit code 2; anything else is a bug and keeps its
traceback. Raising this type is how a module says "the input is wrong, not the code".
"""


class FairbenchError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name."""
