"""The ``dlfr`` command: ``demo``, ``info``, ``train``, ``predict``, ``convert``, ``bench``
and ``plot``.

:mod:`.main` wires the parser and reports failures; each command is a module of its own
that declares its arguments (``register``) and runs a plain function with typed
parameters (``dlfr.cli.train.train``, ...).

Every expected failure (a missing file, a bad model file, data that does not fit the
model, a bad option) is reported as one line on stderr, ``dlfr: error: ...``, with exit
status 2 and no traceback; an unexpected error (a bug) keeps its traceback. Files are
written to a temporary name in their folder and renamed into place, so a failed command
leaves no half-written output. Set ``DLFR_DEBUG=1`` to see the traceback of an expected
failure too.
"""

from .main import main

__all__ = ["main"]
