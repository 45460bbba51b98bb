"""Find out what a source directory holds and present it in Meta's layout.

Two layouts are accepted and told apart by their config.json, then confirmed by their
tensor names; a directory that fits neither is refused rather than guessed at:

- a llamacode checkpoint (:mod:`convert.checkpoint_format`: Meta names, no permutation);
- a Hugging Face Llama directory (``"model_type": "llama"``, ``model.layers.N...`` names,
  q/k rows in rotate_half order, permuted here).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llamacode.convert.checkpoint_format import (
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    ModelConfig,
    is_checkpoint_config,
    parse_config,
)
from llamacode.convert.errors import (
    MissingTokenizerError,
    MissingWeightsError,
    TensorShapeError,
    UnknownSourceError,
    UnsupportedArchitectureError,
)
from llamacode.convert.gguf_kv import kv_bool
from llamacode.convert.llama_layout import hf_name, hf_to_meta_rows, meta_shapes
from llamacode.convert.safetensors_io import SafetensorsFile
from llamacode.convert.vocab import Vocab, bpe_vocab, fim_kvs, gguf_vocab, sentencepiece_vocab
from llamacode.runtime.fim import detect_fim
from llamacode.runtime.gguf_keys import Keys

log = logging.getLogger(__name__)

# Hugging Face special-token names -> the GGUF keys of their ids, and of "add it" flags.
_HF_SPECIAL_IDS = {
    "bos": Keys.Tokenizer.BOS_ID,
    "eos": Keys.Tokenizer.EOS_ID,
    "unk": Keys.Tokenizer.UNK_ID,
    "pad": Keys.Tokenizer.PAD_ID,
}
_HF_ADD_SPECIAL = {"bos": Keys.Tokenizer.ADD_BOS, "eos": Keys.Tokenizer.ADD_EOS}


@dataclass
class SourceModel:
    """Weights (read one tensor at a time), hyper-parameters and tokenizer of a model."""

    path: Path
    layout: Literal["llamacode", "huggingface"]
    hparams: ModelConfig
    vocab: Vocab
    name: str
    chat_template: str | None
    # Meta name -> (file, name in that file)
    tensors: dict[str, tuple[SafetensorsFile, str]] = field(default_factory=dict)

    def read(self, meta_name: str) -> np.ndarray:
        """A tensor as float32 in Meta's layout."""
        st, name = self.tensors[meta_name]
        data = st.read_f32(name)
        if self.layout == "huggingface":
            if meta_name.endswith("attention.wq.weight"):
                data = hf_to_meta_rows(data, self.hparams.n_heads)
            elif meta_name.endswith("attention.wk.weight"):
                data = hf_to_meta_rows(data, self.hparams.n_kv_heads)
        return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnknownSourceError(f"{path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UnknownSourceError(f"{path}: expected a JSON object")
    return data


def load_source(path: str | Path, bpe_pre: str | None = None) -> SourceModel:
    """Inspect ``path`` fully (config, every tensor header, tokenizer) before anything is written."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not path.is_dir() or not config_path.is_file():
        raise UnknownSourceError(
            f"{path}: not a model directory (no {CONFIG_FILE}); give a llamacode checkpoint, "
            "a Hugging Face Llama directory or a .gguf file"
        )
    config = _read_json(config_path)
    if is_checkpoint_config(config):
        return _load_checkpoint(path, config)
    if "model_type" in config or "architectures" in config:
        return _load_huggingface(path, config, bpe_pre)
    raise UnknownSourceError(
        f"{config_path}: neither a llamacode checkpoint (format {FORMAT!r}) nor a "
        "Hugging Face config (model_type); cannot tell how to read the weights"
    )


def _load_checkpoint(path: Path, data: dict[str, Any]) -> SourceModel:
    config_path = path / CONFIG_FILE
    config = parse_config(data, config_path)
    hparams = config.model
    weights = path / MODEL_FILE
    if not weights.is_file():
        raise MissingWeightsError(f"{weights}: missing; the checkpoint has no weights")
    st = SafetensorsFile(weights)
    hf_like = [n for n in st.entries if n.startswith("model.")]
    if hf_like:
        raise TensorShapeError(
            f"{weights}: tensors use Hugging Face names ({hf_like[0]}) but config.json says "
            "llamacode checkpoint; refusing to guess the q/k layout"
        )
    tensors = _match(hparams, {n: (st, n) for n in st.entries}, lambda m: m)

    tok_path = path / config.tokenizer.file
    if not tok_path.is_file():
        raise MissingTokenizerError(f"{tok_path}: tokenizer file named in {CONFIG_FILE} is missing")
    if config.tokenizer.type == "sentencepiece":
        vocab = sentencepiece_vocab(tok_path, hparams.vocab_size)
    else:
        vocab = gguf_vocab(tok_path, hparams.vocab_size)
    fim = config.tokenizer.fim
    if fim:
        found = detect_fim(vocab.token_id, vocab.token_text, **fim)
        assert found is not None  # explicit pre and suf always give a result
        vocab.kvs.update(fim_kvs(found))
    return SourceModel(
        path=path,
        layout="llamacode",
        hparams=hparams,
        vocab=vocab,
        name=path.resolve().name,
        chat_template=config.chat_template,
        tensors=tensors,
    )


def _match(
    hparams: ModelConfig,
    available: dict[str, tuple[SafetensorsFile, str]],
    rename: Any,
) -> dict[str, tuple[SafetensorsFile, str]]:
    """Pair every expected tensor with its stored one; shapes must match exactly."""
    tensors: dict[str, tuple[SafetensorsFile, str]] = {}
    expected = meta_shapes(hparams)
    for meta, shape in expected.items():
        stored = rename(meta)
        if stored not in available:
            st = next(iter(available.values()))[0] if available else None
            where = st.path if st else "weights"
            raise TensorShapeError(f"{where}: tensor {stored!r} is missing")
        st, name = available[stored]
        actual = st.entries[name].shape
        if tuple(actual) != shape:
            raise TensorShapeError(
                f"{st.path}: tensor {name!r} has shape {list(actual)}, but the config "
                f"requires {list(shape)}"
            )
        tensors[meta] = (st, name)
    wanted = {rename(m) for m in expected}
    extra = sorted(
        n for n in available if n not in wanted and not n.endswith("rotary_emb.inv_freq")
    )
    if extra:
        st = available[extra[0]][0]
        raise TensorShapeError(
            f"{st.path}: unexpected tensors {extra[:3]} that this Llama config does not "
            "use; the weights and config.json do not belong together"
        )
    return tensors


def _load_huggingface(path: Path, config: dict[str, Any], bpe_pre: str | None) -> SourceModel:
    config_path = path / CONFIG_FILE
    model_type = config.get("model_type")
    archs = config.get("architectures") or []
    if model_type != "llama" and "LlamaForCausalLM" not in archs:
        raise UnsupportedArchitectureError(
            f"{config_path}: model_type {model_type!r} ({', '.join(archs) or 'no architectures'}) "
            "is not a Llama; only Llama / Code Llama models can be converted"
        )
    unsupported = []
    if config.get("rope_scaling"):
        unsupported.append(f"rope_scaling {config['rope_scaling']!r}")
    if config.get("attention_bias") or config.get("mlp_bias"):
        unsupported.append("bias terms")
    if config.get("hidden_act", "silu") != "silu":
        unsupported.append(f"hidden_act {config['hidden_act']!r}")
    n_heads = config.get("num_attention_heads")
    head_dim = config.get("head_dim")
    if head_dim and n_heads and head_dim * n_heads != config.get("hidden_size"):
        unsupported.append(f"head_dim {head_dim} != hidden_size / num_attention_heads")
    if unsupported:
        raise UnsupportedArchitectureError(
            f"{config_path}: Llama variant with {', '.join(unsupported)} is not supported"
        )
    try:
        values = dict(
            dim=int(config["hidden_size"]),
            n_layers=int(config["num_hidden_layers"]),
            n_heads=int(config["num_attention_heads"]),
            n_kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            vocab_size=int(config["vocab_size"]),
            hidden_dim=int(config["intermediate_size"]),
            norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(config.get("rope_theta", 10000.0)),
            max_seq_len=int(config.get("max_position_embeddings", 2048)),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownSourceError(f"{config_path}: missing or bad Llama field {exc}") from exc
    try:
        hparams = ModelConfig(**values)
    except ValueError as exc:
        raise UnknownSourceError(f"{config_path}: {exc}") from exc

    available: dict[str, tuple[SafetensorsFile, str]] = {}
    for file in _hf_weight_files(path):
        st = SafetensorsFile(file)
        available.update({n: (st, n) for n in st.entries})
    meta_like = [n for n in available if n.startswith("layers.") or n == "tok_embeddings.weight"]
    if meta_like:
        raise TensorShapeError(
            f"{path}: config.json is a Hugging Face config but tensors use Meta names "
            f"({meta_like[0]}); refusing to guess the q/k layout"
        )
    tensors = _match(hparams, available, hf_name)
    vocab = _hf_vocab(path, hparams.vocab_size, bpe_pre)
    fim = vocab.detect_fim()
    if fim is not None:
        vocab.kvs.update(fim_kvs(fim))
        log.info("FIM tokens found in the vocabulary: %s", fim)
    return SourceModel(
        path=path,
        layout="huggingface",
        hparams=hparams,
        vocab=vocab,
        name=path.resolve().name,
        chat_template=_hf_chat_template(path),
        tensors=tensors,
    )


def _hf_weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map") or {}
        files = sorted({path / f for f in weight_map.values()})
        for f in files:
            if not f.is_file():
                raise MissingWeightsError(f"{f}: shard named in {index.name} is missing")
        return files
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    if list(path.glob("*.bin")) or list(path.glob("*.pth")):
        raise MissingWeightsError(
            f"{path}: only pickle weights (.bin/.pth) found; llamacode reads safetensors only "
            "(pickles can run code). Convert them to safetensors first"
        )
    raise MissingWeightsError(f"{path}: no .safetensors weights found")


def _hf_special(path: Path, vocab_size: int) -> tuple[dict[str, int], dict[str, bool]]:
    from gguf import SpecialVocab

    special = SpecialVocab(path, load_merges=False, n_vocab=vocab_size)
    ids = {
        _HF_SPECIAL_IDS[k]: v for k, v in special.special_token_ids.items() if k in _HF_SPECIAL_IDS
    }
    return ids, dict(special.add_special_token)


def _hf_chat_template(path: Path) -> str | None:
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    tc = path / "tokenizer_config.json"
    if tc.is_file():
        template = _read_json(tc).get("chat_template")
        if isinstance(template, str):
            return template
    return None


def _hf_vocab(path: Path, vocab_size: int, bpe_pre: str | None) -> Vocab:
    ids, add = _hf_special(path, vocab_size)
    tok_json = path / "tokenizer.json"
    sp_model = path / "tokenizer.model"
    if sp_model.is_file():
        added: dict[int, tuple[str, bool]] = {}
        if tok_json.is_file():
            for t in _read_json(tok_json).get("added_tokens", []):
                added[int(t["id"])] = (t["content"], bool(t.get("special")))
        elif (path / "added_tokens.json").is_file():
            for text, i in _read_json(path / "added_tokens.json").items():
                added[int(i)] = (text, False)
        vocab = sentencepiece_vocab(sp_model, vocab_size, added, ids)
    elif tok_json.is_file():
        vocab = bpe_vocab(tok_json, vocab_size, bpe_pre, ids)
    else:
        raise MissingTokenizerError(
            f"{path}: no tokenizer.model or tokenizer.json; a GGUF needs the tokenizer"
        )
    for key, value in add.items():
        if key in _HF_ADD_SPECIAL:
            vocab.kvs[_HF_ADD_SPECIAL[key]] = kv_bool(value)
    return vocab
