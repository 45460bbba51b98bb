"""Bad input: a typed error naming the file and the problem, and no output left behind."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from llamacode.convert.atomic import atomic_file
from llamacode.convert.errors import (
    CorruptHeaderError,
    InvalidGGUFError,
    MissingTokenizerError,
    OutputExistsError,
    TensorShapeError,
    TruncatedFileError,
    UnknownSourceError,
    UnsupportedArchitectureError,
)
from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.import_gguf import import_gguf
from llamacode.runtime.errors import LlamacodeError
from llamacode.runtime.gguf_keys import Keys


@pytest.fixture
def broken(checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the checkpoint to damage; outputs go to tmp_path/out."""
    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    (tmp_path / "out").mkdir()
    return copy


def _export_fails(src: Path, error: type[Exception], match: str) -> None:
    out_dir = src.parent / "out"
    with pytest.raises(error, match=match) as info:
        export_gguf(src, out_dir / "model.gguf", "f16", progress=False)
    assert isinstance(info.value, LlamacodeError)
    assert list(out_dir.iterdir()) == []


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_truncated_safetensors(broken):
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    _export_fails(broken, TruncatedFileError, r"model\.safetensors.*truncated")


def test_truncated_safetensors_header(broken):
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    _export_fails(broken, TruncatedFileError, r"model\.safetensors: header needs")


def test_header_that_lies_about_sizes(broken):
    weights = broken / "model.safetensors"
    header, data = _header(weights)
    header["norm.weight"]["shape"] = [128]  # offsets still span 64 floats
    _write(weights, header, data)
    _export_fails(broken, CorruptHeaderError, r"model\.safetensors.*'norm\.weight'.*inconsistent")


def test_tensor_with_wrong_shape(broken):
    weights = broken / "model.safetensors"
    header, data = _header(weights)
    entry = header["layers.1.feed_forward.w1.weight"]
    entry["shape"] = [entry["shape"][1], entry["shape"][0]]  # transposed: same size, wrong shape
    _write(weights, header, data)
    _export_fails(
        broken, TensorShapeError, r"'layers\.1\.feed_forward\.w1\.weight' has shape \[64, 192\]"
    )


def test_missing_tensor(broken):
    weights = broken / "model.safetensors"
    header, data = _header(weights)
    del header["norm.weight"]
    _write(weights, header, data)
    _export_fails(broken, TensorShapeError, r"'norm\.weight' is missing")


def test_missing_tokenizer(broken):
    (broken / "tokenizer.model").unlink()
    _export_fails(broken, MissingTokenizerError, r"tokenizer\.model: tokenizer file .* missing")


def test_unknown_architecture_in_hf_config(broken):
    (broken / "config.json").write_text(json.dumps({"model_type": "mistral", "hidden_size": 64}))
    _export_fails(broken, UnsupportedArchitectureError, r"config\.json: model_type 'mistral'")


def test_directory_that_is_no_model(broken):
    (broken / "config.json").write_text("{}")
    _export_fails(broken, UnknownSourceError, r"config\.json: neither a llamacode checkpoint")


def test_gguf_of_unknown_architecture(exported, tmp_path):
    raw = bytearray(exported("f32").read_bytes())
    at = raw.index(b"llama", raw.index(Keys.General.ARCHITECTURE.encode()))
    raw[at : at + 5] = b"gpt_x"  # same length, so the file stays well formed
    src = tmp_path / "other.gguf"
    src.write_bytes(bytes(raw))
    with pytest.raises(UnsupportedArchitectureError, match=r"other\.gguf: architecture is 'gpt_x'"):
        import_gguf(src, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.gguf"]


def test_truncated_gguf(exported, tmp_path):
    src = tmp_path / "cut.gguf"
    src.write_bytes(exported("f32").read_bytes()[:5000])
    with pytest.raises(InvalidGGUFError, match=r"cut\.gguf"):
        import_gguf(src, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf"]


def test_import_never_overwrites_a_checkpoint(exported, checkpoint):
    before = sorted(p.name for p in checkpoint.iterdir())
    with pytest.raises(OutputExistsError):
        import_gguf(exported("f32"), checkpoint, progress=False)
    assert sorted(p.name for p in checkpoint.iterdir()) == before


def test_failure_midway_keeps_the_previous_file(tmp_path):
    target = tmp_path / "model.gguf"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half written")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_cli_reports_error_and_exit_code(broken):
    (broken / "tokenizer.model").unlink()
    out = broken.parent / "out" / "m.gguf"
    proc = subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", "convert", str(broken), str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"error: {broken / 'tokenizer.model'}" in proc.stderr
    assert not out.exists()


def test_conversion_does_not_import_torch(checkpoint, tmp_path):
    code = (
        "import sys; from llamacode.convert.cli import register; from llamacode.convert.export_gguf import export_gguf;"
        "from llamacode.convert.import_gguf import import_gguf; from llamacode.convert.quantize import quantize_gguf;"
        f"export_gguf({str(checkpoint)!r}, {str(tmp_path / 'a.gguf')!r}, 'q8_0', progress=False);"
        f"import_gguf({str(tmp_path / 'a.gguf')!r}, {str(tmp_path / 'ck')!r}, progress=False);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
