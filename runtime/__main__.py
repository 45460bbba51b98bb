"""``python -m runtime`` runs the ``llamacode`` command."""

import sys

from runtime.cli import main

sys.exit(main())
