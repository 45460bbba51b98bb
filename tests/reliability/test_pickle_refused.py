"""Pickled weights can run code: llamacode refuses them, and never unpickles with torch.load."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Gadget:
    """Unpickling this runs a shell command (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "hf-llama"
    model.mkdir()
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-5,
        "vocab_size": 300,
        "max_position_embeddings": 256,
        "rope_theta": 10000.0,
    }
    (model / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "pwned"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Gadget(marker)}))
    return model, marker


def test_convert_refuses_pickled_weights_without_unpickling_them(
    hostile_checkpoint, tmp_path: Path
):
    model, marker = hostile_checkpoint
    out = tmp_path / "out.gguf"
    result = subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", "convert", str(model), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "pickle" in result.stderr and "safetensors" in result.stderr
    assert not marker.exists() and not out.exists()


def test_torch_load_with_weights_only_refuses_the_gadget(hostile_checkpoint):
    torch = pytest.importorskip("torch")
    model, marker = hostile_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        torch.load(model / "pytorch_model.bin", weights_only=True)
    assert not marker.exists()


def test_no_code_calls_torch_load_without_weights_only():
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "runtime/engine.py" in tracked
    offenders = []
    for name in tracked:
        source = (ROOT / name).read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\([^)]*\)", source):
            if "weights_only=True" not in call:
                offenders.append(f"{name}: {call}")
    assert not offenders
