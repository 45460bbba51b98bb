"""Hugging Face Llama directories (rotate_half q/k layout) -> GGUF with the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFReader, Keys

from llamacode.convert.export_gguf import export_gguf
from tests.convert.convert_helpers import llama_logits, open_llama

CFG = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=160, theta=1e6, eps=1e-5)


def hf_weights(vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in Hugging Face names; norms random too, so a mix-up would show."""
    rng = np.random.default_rng(seed)
    d, h, kv, ff = CFG["dim"], CFG["n_heads"], CFG["n_kv_heads"], CFG["hidden_dim"]
    hd = d // h

    def w(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    out = {
        "model.embed_tokens.weight": w(vocab, d),
        "model.norm.weight": 1 + w(d),
        "lm_head.weight": w(vocab, d),
    }
    for i in range(CFG["n_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": 1 + w(d),
            p + "post_attention_layernorm.weight": 1 + w(d),
            p + "self_attn.q_proj.weight": w(h * hd, d),
            p + "self_attn.k_proj.weight": w(kv * hd, d),
            p + "self_attn.v_proj.weight": w(kv * hd, d),
            p + "self_attn.o_proj.weight": w(d, h * hd),
            p + "mlp.gate_proj.weight": w(ff, d),
            p + "mlp.up_proj.weight": w(ff, d),
            p + "mlp.down_proj.weight": w(d, ff),
        }
    return out


def hf_forward(weights: dict[str, np.ndarray], tokens: list[int]) -> np.ndarray:
    """Reference forward exactly as transformers' Llama computes it (rotate_half RoPE)."""
    import torch
    import torch.nn.functional as F

    W = {k: torch.from_numpy(v) for k, v in weights.items()}
    d, h, kv = CFG["dim"], CFG["n_heads"], CFG["n_kv_heads"]
    hd, t = d // h, len(tokens)

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["eps"]) * w

    def rotate_half(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    inv_freq = 1.0 / CFG["theta"] ** (torch.arange(0, hd, 2).float() / hd)
    emb = torch.cat([torch.outer(torch.arange(t).float(), inv_freq)] * 2, dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    for i in range(CFG["n_layers"]):
        p = f"model.layers.{i}."
        a = norm(x, W[p + "input_layernorm.weight"])
        q = (a @ W[p + "self_attn.q_proj.weight"].T).view(t, h, hd).transpose(0, 1)
        k = (a @ W[p + "self_attn.k_proj.weight"].T).view(t, kv, hd).transpose(0, 1)
        v = (a @ W[p + "self_attn.v_proj.weight"].T).view(t, kv, hd).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(h // kv, 0), v.repeat_interleave(h // kv, 0)
        o = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
        x = x + o.transpose(0, 1).reshape(t, d) @ W[p + "self_attn.o_proj.weight"].T
        m = norm(x, W[p + "post_attention_layernorm.weight"])
        g = F.silu(m @ W[p + "mlp.gate_proj.weight"].T) * (m @ W[p + "mlp.up_proj.weight"].T)
        x = x + g @ W[p + "mlp.down_proj.weight"].T
    return (norm(x, W["model.norm.weight"]) @ W["lm_head.weight"].T).numpy()


def write_hf_dir(path: Path, weights: dict[str, np.ndarray], vocab: int, shards: int = 2) -> Path:
    from safetensors.numpy import save_file

    path.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": CFG["dim"],
        "num_hidden_layers": CFG["n_layers"], "num_attention_heads": CFG["n_heads"],
        "num_key_value_heads": CFG["n_kv_heads"], "intermediate_size": CFG["hidden_dim"],
        "rms_norm_eps": CFG["eps"], "rope_theta": CFG["theta"], "max_position_embeddings": 256,
        "vocab_size": vocab, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "rope_scaling": None,
    }  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    names = list(weights)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: weights[n] for n in names[s::shards]}
        save_file(part, path / file)
        weight_map |= dict.fromkeys(part, file)
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return path


def test_hf_sentencepiece_dir_logits_match(tmp_path, sp_model, tokens):
    weights = hf_weights(400)
    hf = write_hf_dir(tmp_path / "hf-llama", weights, 400)
    (hf / "tokenizer.model").write_bytes(sp_model.read_bytes())
    template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (hf / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True,
                    "chat_template": template})
    )  # fmt: skip
    out = tmp_path / "hf.gguf"
    export_gguf(hf, out, "f32", progress=False)
    diff = float(np.abs(llama_logits(out, tokens) - hf_forward(weights, tokens)).max())
    print(f"HF layout f32: max |llama.cpp - torch| = {diff:.3g}")
    assert diff < 1e-3
    fields = {k: v.contents() for k, v in GGUFReader(out).fields.items()}
    assert fields[Keys.Tokenizer.CHAT_TEMPLATE] == template
    assert fields[Keys.Rope.FREQ_BASE.format(arch=MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA])] == 1e6
    # The Code Llama pieces are in this vocabulary, so the FIM ids are declared.
    assert fields[Keys.Tokenizer.FIM_PRE_ID] == 3
    assert fields[Keys.Tokenizer.EOT_ID] == 6


def test_hf_layout_without_permutation_would_differ(tmp_path, sp_model, tokens):
    """Guards the test above: reading HF weights as Meta layout gives other logits."""
    from llamacode.convert.sources import load_source

    weights = hf_weights(400)
    hf = write_hf_dir(tmp_path / "hf", weights, 400, shards=1)
    (hf / "tokenizer.model").write_bytes(sp_model.read_bytes())
    source = load_source(hf)
    source.layout = "llamacode"  # pretend: no permutation
    out = tmp_path / "wrong.gguf"
    export_gguf(source, out, "f32", progress=False)
    assert float(np.abs(llama_logits(out, tokens) - hf_forward(weights, tokens)).max()) > 0.1


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@pytest.mark.parametrize("merge_style", ["strings", "pairs"])
def test_hf_bpe_tokenizer_json_dir(tmp_path, merge_style):
    byte_tokens = list(_bytes_to_unicode().values())
    merged = ["de", "def", "Ġdef"]
    vocab = {t: i for i, t in enumerate(byte_tokens + merged)}
    merges = [("d", "e"), ("de", "f"), ("Ġ", "def")]
    eos_id = len(vocab)
    tokenizer = {
        "added_tokens": [{"id": eos_id, "content": "<|endoftext|>", "special": True}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "model": {
            "type": "BPE",
            "vocab": vocab,
            "merges": [" ".join(m) for m in merges]
            if merge_style == "strings"
            else [list(m) for m in merges],
        },
    }
    n_vocab = eos_id + 4  # padded: the model's table is larger than the tokenizer
    weights = hf_weights(n_vocab, seed=2)
    hf = write_hf_dir(tmp_path / "bpe", weights, n_vocab, shards=1)
    (hf / "tokenizer.json").write_text(json.dumps(tokenizer))
    (hf / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    )
    out = tmp_path / "bpe.gguf"
    export_gguf(hf, out, "f32", progress=False)
    fields = {k: v.contents() for k, v in GGUFReader(out).fields.items()}
    assert fields[Keys.Tokenizer.MODEL] == "gpt2"
    assert fields[Keys.Tokenizer.PRE] == "gpt-2"
    assert fields[Keys.Tokenizer.MERGES][:2] == ["d e", "de f"]
    assert fields[Keys.Tokenizer.EOS_ID] == eos_id
    llm = open_llama(out)
    try:
        assert llm.tokenize(b"def def", add_bos=False) == [vocab["def"], vocab["Ġdef"]]
    finally:
        llm.close()
    toks = [vocab["def"], vocab["Ġdef"], 70, 71, 72]
    assert float(np.abs(llama_logits(out, toks) - hf_forward(weights, toks)).max()) < 1e-3
