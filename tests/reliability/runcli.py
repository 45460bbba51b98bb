"""The ``llamacode`` command line, run as a user runs it, and what a failure must look like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def llamacode(*args: str | bytes | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the ``llamacode`` CLI (bytes arguments reach it undecoded, as from a shell)."""
    argv = [
        sys.executable,
        "-m",
        "llamacode.runtime",
        *(a if isinstance(a, bytes) else str(a) for a in args),
    ]
    return subprocess.run(argv, capture_output=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a failed run (asserting exit status 2, no traceback)."""
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, (done.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), stderr
    return errors[0]
