"""``python -m envs.render ...``: the CLI of :mod:`envs.render.cli`."""

import sys

from envs.render.cli import main

if __name__ == "__main__":
    sys.exit(main())
