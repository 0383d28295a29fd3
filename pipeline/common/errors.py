"""The one exception type for mistakes a user can fix: bad config, missing files, wrong sizes."""


class UserError(Exception):
    """A problem with the user's input, reported as one sentence and exit code 2, never a traceback."""


def first_line(err: Exception) -> str:
    """An exception's message, one line and short (its type's name when it has none)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def reason(err: Exception) -> str:
    """An exception as 'Type: first sentence', for a message in parentheses."""
    text = (str(err).splitlines() or [""])[0].split(". ")[0].rstrip(".:")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
