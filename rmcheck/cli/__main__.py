"""``python -m rmcheck.cli``: the same as the ``rmcheck`` command."""
import sys

from .app import main

sys.exit(main())
