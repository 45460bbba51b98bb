"""Outputs appear whole or not at all: write beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from convert.errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish(tmp: Path, target: Path, mode: int) -> None:
    """Give the finished output the mode a plainly created one gets (mkstemp makes 0600)."""
    tmp.chmod(mode & ~_umask())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success it replaces the target.

    On any error the temporary file is removed and an existing target is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            target.rmdir()
        _publish(tmp, target, 0o777)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
