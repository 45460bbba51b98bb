"""The Qwen2 parts of the PyTorch model: rotate_half RoPE and q/k/v biases."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from llamacode.convert.checkpoint_format import ROPE_INTERLEAVED, ROPE_ROTATE_HALF, ModelConfig
from llamacode.convert.llama_layout import meta_shapes, meta_to_hf_rows
from llamacode.training.model import Transformer

QWEN2_LIKE = ModelConfig(
    dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300, hidden_dim=128,
    qkv_bias=True, rope_layout=ROPE_ROTATE_HALF,
)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def _random(config: ModelConfig, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(config)
    model.reset_parameters(std=0.2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, 0.5)
    return model.eval()


def _logits(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)[0]


def test_rotate_half_on_hugging_face_rows_equals_interleaved_on_meta_rows():
    # The same attention, written in the two row orders, must give the same logits:
    # this pins rotate_half to pairs (i, i + head_dim/2) turned by the same angles.
    interleaved = _random(dataclasses.replace(QWEN2_LIKE, rope_layout=ROPE_INTERLEAVED))
    rotate_half = Transformer(QWEN2_LIKE).eval()
    state = interleaved.state_dict()
    for name, value in state.items():
        if ".attention.wq." in name or ".attention.wk." in name:
            heads = QWEN2_LIKE.n_heads if ".wq." in name else QWEN2_LIKE.n_kv_heads
            rows = value if value.ndim == 2 else value[:, None]
            state[name] = torch.from_numpy(meta_to_hf_rows(rows.numpy(), heads)).reshape(
                value.shape
            )
    rotate_half.load_state_dict(state, strict=True)
    tokens = torch.randint(
        0, QWEN2_LIKE.vocab_size, (1, 48), generator=torch.Generator().manual_seed(1)
    )
    expected = _logits(interleaved, tokens)
    torch.testing.assert_close(_logits(rotate_half, tokens), expected, rtol=0, atol=1e-4)
    # Without the row permutation the two layouts disagree, so the check above has teeth.
    rotate_half.load_state_dict(interleaved.state_dict(), strict=True)
    assert (_logits(rotate_half, tokens) - expected).abs().max() > 0.1


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_state_dict_is_the_checkpoint_tensor_set(qkv_bias):
    config = dataclasses.replace(QWEN2_LIKE, qkv_bias=qkv_bias)
    shapes = {name: tuple(t.shape) for name, t in Transformer(config).state_dict().items()}
    assert shapes == meta_shapes(config)
    assert ("layers.1.attention.wk.bias" in shapes) is qkv_bias
    assert "layers.1.attention.wo.bias" not in shapes


def test_qkv_biases_start_at_zero_and_take_part_in_the_forward_pass():
    model = Transformer(QWEN2_LIKE).eval()
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    assert len(biases) == 3 * QWEN2_LIKE.n_layers and all((b == 0).all() for b in biases)
    tokens = torch.arange(16)[None]
    before = _logits(model, tokens)
    with torch.no_grad():
        model.layers[0].attention.wv.bias.fill_(1.0)
    assert (_logits(model, tokens) - before).abs().max() > 1e-3
