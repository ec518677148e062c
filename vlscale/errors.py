"""The one exception type that the CLI turns into a one-line message (exit code 2).

Raise `UserError` for anything the user can fix (bad input, missing file, unknown name); its
message must say what is wrong and how to fix it. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""
