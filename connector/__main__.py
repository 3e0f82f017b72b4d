"""Entry point for ``python -m connector``."""

import sys

from .cli import main

sys.exit(main(prog="python -m connector"))
