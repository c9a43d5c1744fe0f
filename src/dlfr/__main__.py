"""``python -m dlfr``: the same as the ``dlfr`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
