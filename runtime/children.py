"""How llamacode starts Python child processes: apart from the working directory and from
the user's Python environment variables.

Editors start the language server in the workspace folder. A child started there as
``python -m llamacode.runtime.probe`` would put that folder first on ``sys.path``, so a workspace
holding ``runtime/__init__.py`` (or just ``typing.py``) would run its own code inside our
child. ``-I`` keeps the working directory, ``PYTHON*`` variables and the user's site
directory out of the child's imports, and the child runs in a neutral directory.
"""

from __future__ import annotations

import os
import sys

# Where children run: nothing there is on their import path, and it always exists.
CHILD_CWD = os.path.abspath(os.sep)


def python_argv(*args: str) -> list[str]:
    """This interpreter, isolated (``-I``), with ``args``."""
    return [sys.executable, "-I", *args]


def module_argv(module: str, *args: str) -> list[str]:
    """Run ``module`` (pass the module's own ``__name__``) in an isolated interpreter."""
    return python_argv("-m", module, *args)
