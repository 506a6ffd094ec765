"""``python -m backend <command>``: see :mod:`backend.cli`."""
import sys

from .cli import main

sys.exit(main())
