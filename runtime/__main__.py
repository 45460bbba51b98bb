"""``python -m llamacode.runtime`` runs the ``llamacode`` command."""

import sys

from llamacode.runtime.cli import main

sys.exit(main())
