"""The checkpoint directory, defined once for training (which writes and resumes it) and
convert (which reads and writes it), without torch.

A checkpoint is a directory holding

- ``config.json``: ``format`` and ``format_version``, the ``model`` hyper-parameters
  (:class:`ModelConfig`), the ``tokenizer`` (its type, its file in the directory and its
  FIM ids), the ``chat_template`` and free-form ``training`` notes;
- ``model.safetensors``: the weights, in Meta's names and layout (:mod:`convert.llama_layout`);
- the tokenizer file: a sentencepiece ``tokenizer.model``, or ``tokenizer.gguf`` holding an
  existing model's ``tokenizer.*`` keys.

Training adds its resume state beside these (:mod:`training.checkpoint`).
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from llamacode.convert.errors import MissingTokenizerError, UnknownSourceError

FORMAT = "llamacode-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
# Tokenizer type -> the file that holds it.
TOKENIZER_FILES = {"sentencepiece": "tokenizer.model", "gguf": "tokenizer.gguf"}
FIM_ROLES = ("pre", "suf", "mid", "eot")
# How RoPE pairs a head's dimensions: (2i, 2i+1) as Meta's reference and llama.cpp's
# `llama` tensors do, or (i, i + head_dim/2) as Hugging Face's rotate_half and llama.cpp's
# NeoX-style RoPE (architecture `qwen2`) do. The layout decides the order of q/k rows.
ROPE_INTERLEAVED = "interleaved"
ROPE_ROTATE_HALF = "rotate_half"
ROPE_LAYOUTS = (ROPE_INTERLEAVED, ROPE_ROTATE_HALF)
# Model keys added after format version 1 was first written: a config.json without them
# describes a Llama, which is what their defaults say.
LATER_MODEL_KEYS = ("qkv_bias", "rope_layout")


@dataclass
class ModelConfig:
    """Llama-family hyper-parameters: the ``model`` object of config.json and the
    ``[model]`` table of a training config (the defaults make a tiny CPU Llama).

    ``qkv_bias`` and ``rope_layout`` cover Qwen2: biases on the q/k/v projections and
    rotate_half RoPE (see ``ROPE_LAYOUTS``).
    """

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 4
    vocab_size: int = 512
    hidden_dim: int = 192
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 256
    tie_embeddings: bool = False
    qkv_bias: bool = False
    rope_layout: str = ROPE_INTERLEAVED

    def __post_init__(self) -> None:
        if min(self.dim, self.n_layers, self.n_heads, self.n_kv_heads, self.vocab_size) <= 0:
            raise ValueError("sizes must be positive")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} is odd; RoPE rotates pairs")
        if self.rope_layout not in ROPE_LAYOUTS:
            raise ValueError(
                f"rope_layout {self.rope_layout!r} is not one of {', '.join(ROPE_LAYOUTS)}"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a ``model`` object; unknown keys and wrong types are errors (ValueError)."""
        types = typing.get_type_hints(cls)
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        for name, value in data.items():
            kind = types[name]
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
            if not ok or (kind is not bool and isinstance(value, bool)):
                raise ValueError(f"model.{name} must be {kind.__name__}, not {value!r}")
        return cls(**data)


@dataclass(frozen=True)
class TokenizerRef:
    """Which tokenizer a checkpoint uses, where it is, and its fill-in-the-middle ids."""

    type: str
    fim: dict[str, int | None] | None = None

    @property
    def file(self) -> str:
        return TOKENIZER_FILES[self.type]


@dataclass
class CheckpointConfig:
    """The contents of a checkpoint's config.json."""

    model: ModelConfig
    tokenizer: TokenizerRef
    chat_template: str | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model.to_dict(),
            "tokenizer": {
                "type": self.tokenizer.type,
                "file": self.tokenizer.file,
                "fim": self.tokenizer.fim,
            },
            "chat_template": self.chat_template,
            "training": self.training,
        }


def is_checkpoint_config(data: dict[str, Any]) -> bool:
    """Whether a parsed config.json claims to be a checkpoint's (rather than, say, Hugging Face's)."""
    return data.get("format") == FORMAT


def write_config(directory: str | Path, config: CheckpointConfig) -> Path:
    path = Path(directory) / CONFIG_FILE
    path.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def read_config(directory: str | Path) -> CheckpointConfig:
    """Read and check ``config.json`` of the checkpoint in ``directory``.

    Raises :class:`UnknownSourceError` for a directory that is not a checkpoint of this
    format and version, and :class:`MissingTokenizerError` for a tokenizer it cannot name.
    """
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UnknownSourceError(
            f"{directory}: not a checkpoint ({CONFIG_FILE} is missing); give the directory "
            "a training run or `llamacode convert` wrote"
        ) from exc
    except (OSError, ValueError) as exc:
        raise UnknownSourceError(f"{path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict) or not is_checkpoint_config(data):
        raise UnknownSourceError(f"{path}: not a {FORMAT} config")
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> CheckpointConfig:
    """Check a parsed checkpoint config.json (``path`` names it in errors)."""
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UnknownSourceError(
            f"{path}: checkpoint format_version {version!r} is not supported "
            f"(this llamacode reads version {FORMAT_VERSION})"
        )
    known = {"format", "format_version", "model", "tokenizer", "chat_template", "training"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UnknownSourceError(f"{path}: unknown keys {unknown}")
    model = _model(data.get("model"), path)
    template = data.get("chat_template")
    if template is not None and not isinstance(template, str):
        raise UnknownSourceError(f"{path}: chat_template must be a string or null")
    training = data.get("training") or {}
    if not isinstance(training, dict):
        raise UnknownSourceError(f"{path}: training must be an object")
    return CheckpointConfig(
        model, _tokenizer(data.get("tokenizer"), model, path), template, training
    )


def _model(data: Any, path: Path) -> ModelConfig:
    if not isinstance(data, dict):
        raise UnknownSourceError(f"{path}: 'model' must be an object of hyper-parameters")
    missing = [
        f.name for f in fields(ModelConfig) if f.name not in data and f.name not in LATER_MODEL_KEYS
    ]
    if missing:
        raise UnknownSourceError(f"{path}: incomplete model hyper-parameters, missing {missing}")
    try:
        return ModelConfig.from_dict(data)
    except ValueError as exc:
        raise UnknownSourceError(f"{path}: bad model hyper-parameters: {exc}") from exc


def _tokenizer(data: Any, model: ModelConfig, path: Path) -> TokenizerRef:
    tok = data if isinstance(data, dict) else {}
    kind = tok.get("type")
    if kind not in TOKENIZER_FILES or tok.get("file") != TOKENIZER_FILES[kind]:
        expected = " or ".join(f"{t!r} in {f}" for t, f in TOKENIZER_FILES.items())
        raise MissingTokenizerError(f"{path}: tokenizer must be type {expected}; found {data!r}")
    fim = tok.get("fim")
    if fim is None:
        return TokenizerRef(kind)
    try:
        ids = {role: int(fim[role]) for role in FIM_ROLES[:3]}
        ids["eot"] = int(fim["eot"]) if fim.get("eot") is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingTokenizerError(
            f"{path}: tokenizer.fim must hold integer pre/suf/mid/eot ids ({exc!r})"
        ) from exc
    bad = [i for i in ids.values() if i is not None and not 0 <= i < model.vocab_size]
    if bad:
        raise MissingTokenizerError(f"{path}: FIM ids {bad} are outside the vocabulary")
    return TokenizerRef(kind, ids)
