"""LoRA adapters through the engine: llama.cpp applies what write_lora_gguf writes exactly as
the merged weights W + (alpha / rank) B A would compute, and every adapter that cannot apply
is refused before llama.cpp sees it, with one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamacode.convert.gguf_kv import numpy_shape, open_gguf, read_kv, read_tensor_bytes
from llamacode.convert.gguf_write import PlannedTensor, write_gguf
from llamacode.convert.lora_gguf import write_lora_gguf
from llamacode.runtime.adapter import TOKEN_EMBD
from llamacode.runtime.catalog import QWEN_05B, QWEN_15B
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.errors import AdapterError, AdapterMismatchError
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.models import catalog_path
from tests.fixtures.gguf_models import TinyVocab, write_tiny_gguf

LLAMACODE = [sys.executable, "-m", "llamacode.runtime"]
RANK = 4
ALPHA = 8.0
# How far the adapter's logits may be from the merged model's. llama.cpp adds
# (alpha / rank) B (A x) to W x in float32; the merged file rounds W + (alpha / rank) B A to
# float32 once. Measured over nine weight/adapter seeds, with logits up to 2.7 that the adapter
# moves by up to 3.0: f32 4e-7 to 3.6e-5; f16 1.2e-3 to 5.5e-3 (llama.cpp multiplies f16
# matrices with activations rounded to f16).
MERGED_BOUND = {"f32": 1e-4, "f16": 2e-2}
NUMPY = {"f32": np.float32, "f16": np.float16}
PROMPTS = (("▁def", "▁add", "(", "x"), ("▁return", "▁x", "▁+", "▁y"), ("▁for", "▁n", "▁in"))


def lora_pairs(
    model: Path, rng: np.random.Generator, rank: int = RANK, zero_b: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random (A, B) for every matrix of ``model`` but the embeddings, sized to move the
    logits as much as the weights themselves do."""
    pairs = {}
    for tensor in read_header(model).tensors:
        if len(tensor.shape) != 2 or tensor.name == TOKEN_EMBD:
            continue
        n_in, n_out = tensor.shape
        a = (rng.standard_normal((rank, n_in)) * 0.1).astype(np.float32)
        b = np.zeros((n_out, rank), np.float32)
        if not zero_b:
            b = (rng.standard_normal((n_out, rank)) * 0.1).astype(np.float32)
        pairs[tensor.name] = (a, b)
    return pairs


def write_merged(base: Path, out: Path, pairs: dict, alpha: float) -> Path:
    """A copy of the F32 model ``base`` with W + (alpha / rank) B A in place of each W."""
    source = open_gguf(base)
    planned = []
    for tensor in source.tensors:
        shape = numpy_shape(tensor)
        weights = read_tensor_bytes(base, tensor).view(np.float32).reshape(shape)
        if tensor.name in pairs:
            a, b = (m.astype(np.float64) for m in pairs[tensor.name])
            weights = (weights + alpha / a.shape[0] * (b @ a)).astype(np.float32)
        planned.append(
            PlannedTensor(
                tensor.name, shape, gguf.GGMLQuantizationType.F32, partial(_same, weights)
            )
        )
    write_gguf(out, read_kv(source), planned, progress=False)
    return out


def _same(values: np.ndarray) -> np.ndarray:
    return values


def logits(model: Path, vocab: TinyVocab | None, prompts, **config) -> np.ndarray:
    """The last position's logits after each prompt (token texts, or ids when no vocab)."""
    engine = Engine.load(model, EngineConfig(n_ctx=256, n_threads=1, **config))
    rows = []
    try:
        for prompt in prompts:
            ids = [1, *(vocab.id(t) for t in prompt)] if vocab else list(prompt)
            engine._llm.n_tokens = 0  # a fresh evaluation of every prompt
            engine.generate(ids, GenerationConfig(max_tokens=1))
            rows.append(engine._last_logits().copy())
    finally:
        engine.close()
    return np.stack(rows)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLAMACODE, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """Two layers of random F32 weights: every matrix matters to the logits."""
    path = tmp_path_factory.mktemp("lora") / "base.gguf"
    return write_tiny_gguf(path, cl_vocab, n_layer=2, seed=7, name="tiny-base")


@pytest.fixture(scope="module")
def pairs(base: Path) -> dict:
    return lora_pairs(base, np.random.default_rng(1))


@pytest.fixture(scope="module")
def adapter(base: Path, pairs: dict) -> Path:
    path = base.with_name("adapter.gguf")
    write_lora_gguf(path, architecture="llama", alpha=ALPHA, pairs=pairs, base_model="tiny-base")
    return path


@pytest.mark.parametrize("dtype", sorted(MERGED_BOUND))
def test_adapter_gives_the_logits_of_the_merged_weights(
    dtype: str, base: Path, pairs: dict, tmp_path: Path, cl_vocab: TinyVocab
):
    path = tmp_path / "adapter.gguf"
    write_lora_gguf(path, architecture="llama", alpha=ALPHA, pairs=pairs, dtype=dtype)
    stored = {  # the values the adapter holds
        name: tuple(m.astype(NUMPY[dtype]).astype(np.float32) for m in pair)
        for name, pair in pairs.items()
    }
    merged = write_merged(base, tmp_path / "merged.gguf", stored, ALPHA)
    plain = logits(base, cl_vocab, PROMPTS)
    adapted = logits(base, cl_vocab, PROMPTS, adapter_path=str(path))
    expected = logits(merged, cl_vocab, PROMPTS)
    assert np.abs(adapted - plain).max() > 1.0  # the adapter does something
    assert np.abs(adapted - expected).max() < MERGED_BOUND[dtype]
    # The top token of every prompt changes under the adapter just as under the merge.
    assert (adapted.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.parametrize("case", ["B = 0", "scale 0"])
def test_an_adapter_that_adds_nothing_gives_the_base_logits_exactly(
    case: str, base: Path, pairs: dict, tmp_path: Path, cl_vocab: TinyVocab
):
    path = tmp_path / "nothing.gguf"
    zero_b = case == "B = 0"
    chosen = lora_pairs(base, np.random.default_rng(2), zero_b=True) if zero_b else pairs
    write_lora_gguf(path, architecture="llama", alpha=ALPHA, pairs=chosen)
    scale = 1.0 if zero_b else 0.0
    adapted = logits(base, cl_vocab, PROMPTS, adapter_path=str(path), adapter_scale=scale)
    assert np.array_equal(adapted, logits(base, cl_vocab, PROMPTS))


def test_the_trial_load_in_a_child_applies_the_adapter(
    base: Path, adapter: Path, cl_vocab: TinyVocab
):
    isolated = logits(base, cl_vocab, PROMPTS[:1], adapter_path=str(adapter), isolate_load=True)
    assert np.array_equal(isolated, logits(base, cl_vocab, PROMPTS[:1], adapter_path=str(adapter)))


def _bad_adapter(case: str, base: Path, pairs: dict, directory: Path) -> Path:
    """An adapter that cannot apply to ``base``, made the way ``case`` says."""
    path = directory / f"{case.replace(' ', '-')}.gguf"
    if case == "missing file":
        return path
    if case == "a model":
        return base
    if case == "wrong architecture":
        write_lora_gguf(path, architecture="qwen2", alpha=ALPHA, pairs=pairs)
    elif case == "wrong shapes":
        name = "blk.0.ffn_up.weight"
        a, b = pairs[name]
        write_lora_gguf(path, architecture="llama", alpha=ALPHA, pairs={name: (a, b[:64])})
    elif case == "unknown tensor":
        wrong = {"blk.9.attn_q.weight": pairs["blk.0.attn_q.weight"]}
        write_lora_gguf(path, architecture="llama", alpha=ALPHA, pairs=wrong)
    elif case == "truncated file":
        whole = directory / "whole.gguf"
        write_lora_gguf(whole, architecture="llama", alpha=ALPHA, pairs=pairs)
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return path


BAD = {
    "missing file": (AdapterError, "LoRA adapter not found"),
    "a model": (AdapterError, "is a model, not a LoRA adapter"),
    "wrong architecture": (AdapterMismatchError, "adapts qwen2 models and this is a llama model"),
    "wrong shapes": (AdapterMismatchError, "blk.0.ffn_up.weight is 128 x 64 in the model"),
    "unknown tensor": (AdapterMismatchError, "blk.9.attn_q.weight, which the model does not"),
    "truncated file": (AdapterError, "cannot be used as a LoRA adapter: .* past the end"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_adapter_that_cannot_apply_is_one_clear_error(
    case: str, base: Path, pairs: dict, tmp_path: Path
):
    path = _bad_adapter(case, base, pairs, tmp_path)
    error, message = BAD[case]
    with pytest.raises(error, match=message):
        Engine.load(base, EngineConfig(n_threads=1, adapter_path=str(path)))
    result = run_cli("infill", "-m", str(base), "--prefix", "def f", "--adapter", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "add", "message"),
    [
        ("adapter.lora.alpha", "add_uint32", "not a finite float32"),
        ("adapter.type", "add_uint32", "is not a string"),
    ],
)
def test_metadata_llama_cpp_would_abort_on_is_refused(
    key: str, add: str, message: str, base: Path, pairs: dict, tmp_path: Path
):
    """llama.cpp reads these keys with getters that abort the process on another type."""
    path = tmp_path / "typed.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    for other, value in ((gguf.Keys.Adapter.TYPE, "lora"), (gguf.Keys.Adapter.LORA_ALPHA, 8.0)):
        if other != key:
            (writer.add_string if isinstance(value, str) else writer.add_float32)(other, value)
    getattr(writer, add)(key, 8)
    a, b = pairs["blk.0.attn_q.weight"]
    writer.add_tensor("blk.0.attn_q.weight.lora_a", a)
    writer.add_tensor("blk.0.attn_q.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(AdapterError, match=message):
        Engine.load(base, EngineConfig(n_threads=1, adapter_path=str(path)))


def test_info_shows_the_adapter(base: Path, adapter: Path):
    result = run_cli("info", str(base), "--adapter", str(adapter))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"adapter                {adapter}\n" in out
    assert f"rank {RANK}, alpha 8, scale 1, 15 tensors adapted" in out  # 2 x 7 + output
    assert "made for             tiny-base (llama)" in out
    assert "fits                 yes" in out
    shown = json.loads(run_cli("info", str(base), "--adapter", str(adapter), "--json").stdout)
    assert shown["adapter"] | {"path": None} == {
        "path": None,
        "name": None,
        "architecture": "llama",
        "alpha": ALPHA,
        "ranks": [RANK],
        "tensors": 15,
        "base_model": "tiny-base",
        "size_bytes": adapter.stat().st_size,
        "scale": 1.0,
        "fits": True,
        "problem": None,
    }


def test_info_says_why_an_adapter_does_not_fit(base: Path, pairs: dict, tmp_path: Path):
    path = _bad_adapter("wrong shapes", base, pairs, tmp_path)
    result = run_cli("info", str(base), "--adapter", str(path))
    assert result.returncode == 0, result.stderr
    assert "fits                 no: the LoRA adapter" in result.stdout


@pytest.mark.slow
def test_an_adapter_for_qwen_05b_applies_to_it_and_not_to_the_15b(tmp_path: Path):
    model = catalog_path(QWEN_05B)
    if not model.is_file():
        pytest.fail("run `llamacode models install qwen2.5-coder-0.5b` (make test does)")
    made = lora_pairs(model, np.random.default_rng(3), rank=8)
    layers = {name: pair for name, pair in made.items() if name.startswith(("blk.0.", "blk.1."))}
    adapter, silent = tmp_path / "qwen.gguf", tmp_path / "silent.gguf"
    write_lora_gguf(adapter, architecture="qwen2", alpha=16.0, pairs=layers, base_model="Qwen")
    zero = {name: (a, np.zeros_like(b)) for name, (a, b) in layers.items()}
    write_lora_gguf(silent, architecture="qwen2", alpha=16.0, pairs=zero, dtype="f16")
    prompt = [[1, 2, 3, 4, 5, 6, 7, 8]]
    plain = logits(model, None, prompt)
    assert np.abs(logits(model, None, prompt, adapter_path=str(adapter)) - plain).max() > 0.1
    assert np.array_equal(logits(model, None, prompt, adapter_path=str(silent)), plain)
    larger = catalog_path(QWEN_15B)
    if larger.is_file():
        with pytest.raises(AdapterMismatchError, match=r"blk\.0\.attn_k\.weight is 256 x 1536"):
            Engine.load(larger, EngineConfig(n_threads=1, adapter_path=str(adapter)))
