"""Outputs appear whole or not at all: write beside the target, rename at the end.

Nothing is replaced unless the user said so, and a conversion stopped by SIGTERM or
SIGHUP removes its temporary output like one stopped by an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from llamacode.convert.errors import ConvertError, OutputExistsError

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, target: Path, mode: int) -> None:
    """Give the finished output the mode a plainly created one gets (mkstemp makes 0600)."""
    tmp.chmod(mode & ~_umask())
    os.replace(tmp, target)


def refuse_existing(target: str | os.PathLike[str], force: bool) -> None:
    """Refuse to replace an existing output file unless ``force``; never replace a directory."""
    target = Path(target)
    if target.is_dir():
        raise OutputExistsError(f"{target} is a directory; give the output file's path")
    if (target.exists() or target.is_symlink()) and not force:
        raise OutputExistsError(
            f"{target} already exists; choose a new output path, or pass --force to replace it"
        )


@contextlib.contextmanager
def stopped_by_signals_cleanly() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise SystemExit instead of killing at once.

    The signals' default action ends the process where it stands, leaving the temporary
    outputs of :func:`atomic_file` and :func:`atomic_directory` behind; as an exception,
    they unwind through the cleanup those functions do on any error. (Python runs the
    handler between bytecodes, so a long call into llama.cpp finishes first.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _temporary(target: Path, make: str) -> Path:
    """A fresh file or directory (``make``) beside ``target``, named ``.NAME.*.partial``."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if make == "dir":
            return Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
            )
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        os.close(fd)
        return Path(name)
    except OSError as exc:
        raise ConvertError(
            f"cannot write {target}: {exc.strerror}; choose an output path in a directory you "
            "can write to"
        ) from exc


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success it replaces the target.

    On any error the temporary file is removed and an existing target is left untouched.
    """
    target = Path(target)
    tmp = _temporary(target, "file")
    try:
        yield tmp
        _publish(tmp, target, 0o666)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it becomes ``target``.

    ``target`` must not exist or be an empty directory: a checkpoint is never overwritten.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputExistsError(
            f"{target}: already exists and is not an empty directory; choose a new output path"
        )
    tmp = _temporary(target, "dir")
    try:
        yield tmp
        if target.exists():
            target.rmdir()
        _publish(tmp, target, 0o777)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
