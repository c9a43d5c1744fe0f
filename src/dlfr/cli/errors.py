"""The command's own error for bad input."""


class CLIError(Exception):
    """A problem with the command's input, reported as ``dlfr: error: <message>``, exit status 2."""
