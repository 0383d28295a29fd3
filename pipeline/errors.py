"""The one exception type for mistakes a user can fix: bad config, missing files, wrong sizes."""


class UserError(Exception):
    """A problem with the user's input, reported as one sentence and exit code 2, never a traceback."""
