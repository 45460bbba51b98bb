"""What a GGUF says about its model: shape, context, RoPE, tokenizer, FIM and chat template.

Read from the header alone (no weights, no llama.cpp), so ``llamacode info`` is instant and
the engine can choose its settings before it loads anything.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llamacode.runtime.catalog import measured_fim_mode
from llamacode.runtime.errors import InvalidModelError
from llamacode.runtime.fim import FimMode, FimTokens, detect_fim
from llamacode.runtime.gguf_file import GGUFHeader, read_header
from llamacode.runtime.gguf_keys import Keys

# llama.cpp's file types (general.file_type), as users know them.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}
# llama.cpp's LLAMA_MAX_LAYERS: it aborts the whole process (GGML_ASSERT) on a file that
# declares more layers, so a file claiming more is refused here, with a message.
MAX_LAYERS = 512
# Beyond any published model; a file claiming more is hostile or broken.
MAX_EMBD = 1 << 17
MAX_CONTEXT = 1 << 24
# The tensors of layer N are named blk.N.* (gguf-py's TENSOR_NAMES).
_LAYER_TENSOR = re.compile(r"blk\.(\d+)\.")
# What llama.cpp assumes when a llama GGUF omits rope.freq_base.
LLAMA_DEFAULT_ROPE_BASE = 10000.0


@dataclass(frozen=True)
class ModelFacts:
    """The facts of one GGUF model that serving depends on."""

    path: Path
    name: str
    architecture: str
    file_type: str
    size_bytes: int
    n_params: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    rope_freq_base: float
    rope_freq_base_stated: bool
    tokenizer_model: str
    vocab_size: int
    bos: int | None
    eos: int | None
    eot: int | None
    add_bos: bool
    add_space_prefix: bool
    fim: FimTokens | None
    chat_template: str | None

    @property
    def default_fim_mode(self) -> FimMode | None:
        """The layout measured best for a catalog model; else SPM where the family was
        trained with it (typing only appends to the prompt, so the KV cache stays warm)."""
        if self.fim is None:
            return None
        measured = measured_fim_mode(self.path.name, self.size_bytes)
        if measured is not None:
            return measured
        modes = self.fim.modes
        if FimMode.SPM in modes and self.fim.family.value in (
            "codellama",
            "starcoder",
            "codestral",
        ):
            return FimMode.SPM
        return modes[0]

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: float = 2.0) -> int:
        """KV-cache size for a context of ``n_ctx`` tokens (f16 by default)."""
        head_dim = self.n_embd // max(self.n_head, 1)
        return int(2 * self.n_layer * n_ctx * self.n_head_kv * head_dim * bytes_per_value)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["fim"] = (
            None if self.fim is None else {**asdict(self.fim), "family": self.fim.family.value}
        )
        out["fim_mode"] = None if self.default_fim_mode is None else self.default_fim_mode.value
        return out


def read_facts(path: str | Path) -> ModelFacts:
    """Read a GGUF's facts from its header (raises the reader's typed errors)."""
    header = read_header(path, skip_arrays=(Keys.Tokenizer.MERGES, Keys.Tokenizer.SCORES))
    return facts_from_header(header)


def check_metadata(header: GGUFHeader) -> None:
    """Refuse metadata of the wrong type or an impossible size before llama.cpp reads it."""
    md = header.metadata

    def bad(problem: str) -> InvalidModelError:
        return InvalidModelError(
            f"{header.path} is not a valid GGUF model: {problem}. Download or convert it again."
        )

    if not isinstance(md.get(Keys.General.ARCHITECTURE, ""), str):
        raise bad(f"{Keys.General.ARCHITECTURE} is not a string")
    limits = {
        Keys.LLM.BLOCK_COUNT: MAX_LAYERS,
        Keys.LLM.EMBEDDING_LENGTH: MAX_EMBD,
        Keys.LLM.CONTEXT_LENGTH: MAX_CONTEXT,
        Keys.Attention.HEAD_COUNT: MAX_EMBD,
        Keys.Attention.HEAD_COUNT_KV: MAX_EMBD,
    }
    for key, limit in limits.items():
        value = header.arch_key(key)
        if value is None:
            continue
        name = key.format(arch=header.architecture)
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(f"{name} is {type(value).__name__}, not an integer")
        if not 0 < value <= limit:
            raise bad(f"{name} is {value} (expected 1 to {limit})")
    tokens = md.get(Keys.Tokenizer.LIST)
    if tokens is None:
        return
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise bad(f"{Keys.Tokenizer.LIST} is not an array of strings")
    for key, kind in ((Keys.Tokenizer.SCORES, float), (Keys.Tokenizer.TOKEN_TYPE, int)):
        values = md.get(key)
        if values is None:
            continue
        length = values if isinstance(values, int) and not isinstance(values, bool) else None
        if isinstance(values, list):
            if not all(isinstance(v, kind) for v in values):
                raise bad(f"{key} holds values that are not {kind.__name__}s")
            length = len(values)
        if length != len(tokens):
            raise bad(f"{key} has {length} entries for {len(tokens)} tokens")


def check_layers(header: GGUFHeader) -> None:
    """Refuse a file whose declared layer count does not match its layers' tensors.

    llama.cpp would only say that the model failed to load; every verb that loads a model
    reads its facts first, so the user learns why before llama.cpp reads the file.
    """
    declared = header.arch_key(Keys.LLM.BLOCK_COUNT)
    layers = set()
    for tensor in header.tensors:
        match = _LAYER_TENSOR.match(tensor.name)
        if match:
            layers.add(int(match.group(1)))
    if not isinstance(declared, int) or not layers or layers == set(range(declared)):
        return
    key = Keys.LLM.BLOCK_COUNT.format(arch=header.architecture)
    raise InvalidModelError(
        f"{header.path} is not a valid GGUF model: {key} declares {declared} layers but it "
        f"holds tensors for {len(layers)} (numbered {min(layers)} to {max(layers)}). Download "
        "or convert it again."
    )


def facts_from_header(header: GGUFHeader) -> ModelFacts:
    check_metadata(header)
    check_layers(header)
    md = header.metadata
    tokens = md.get(Keys.Tokenizer.LIST)
    tokens = tokens if isinstance(tokens, list) else []
    by_text = {text: i for i, text in enumerate(tokens) if isinstance(text, str)}
    tokenizer_model = str(md.get(Keys.Tokenizer.MODEL, "unknown"))

    def opt_id(key: str) -> int | None:
        value = md.get(key)
        return value if isinstance(value, int) and 0 <= value < max(len(tokens), 1) else None

    bos, eos = opt_id(Keys.Tokenizer.BOS_ID), opt_id(Keys.Tokenizer.EOS_ID)
    add_bos = bool(md.get(Keys.Tokenizer.ADD_BOS, tokenizer_model == "llama"))
    fim = detect_fim(
        by_text.get,
        lambda i: tokens[i] if 0 <= i < len(tokens) else None,
        pre=opt_id(Keys.Tokenizer.FIM_PRE_ID),
        suf=opt_id(Keys.Tokenizer.FIM_SUF_ID),
        mid=opt_id(Keys.Tokenizer.FIM_MID_ID),
        eot=opt_id(Keys.Tokenizer.EOT_ID),
        eos=eos,
        bos=bos if add_bos else None,
    )
    rope = header.arch_key(Keys.Rope.FREQ_BASE)
    n_params = 0
    for tensor in header.tensors:
        count = 1
        for d in tensor.shape:
            count *= d
        n_params += count
    template = md.get(Keys.Tokenizer.CHAT_TEMPLATE)
    return ModelFacts(
        path=header.path,
        name=str(md.get(Keys.General.NAME, header.path.stem)),
        architecture=header.architecture,
        file_type=FILE_TYPES.get(md.get(Keys.General.FILE_TYPE, -1), "unknown"),
        size_bytes=header.file_size,
        n_params=n_params,
        n_ctx_train=int(header.arch_key(Keys.LLM.CONTEXT_LENGTH, 0) or 0),
        n_embd=int(header.arch_key(Keys.LLM.EMBEDDING_LENGTH, 0) or 0),
        n_layer=int(header.arch_key(Keys.LLM.BLOCK_COUNT, 0) or 0),
        n_head=int(header.arch_key(Keys.Attention.HEAD_COUNT, 0) or 0),
        n_head_kv=int(
            header.arch_key(
                Keys.Attention.HEAD_COUNT_KV, header.arch_key(Keys.Attention.HEAD_COUNT, 0)
            )
            or 0
        ),
        rope_freq_base=float(rope) if rope is not None else LLAMA_DEFAULT_ROPE_BASE,
        rope_freq_base_stated=rope is not None,
        tokenizer_model=tokenizer_model,
        vocab_size=len(tokens),
        bos=bos,
        eos=eos,
        eot=_first_not_none(opt_id(Keys.Tokenizer.EOT_ID), fim.eot if fim else None),
        add_bos=add_bos,
        add_space_prefix=bool(md.get(Keys.Tokenizer.ADD_PREFIX, tokenizer_model == "llama")),
        fim=fim,
        chat_template=template if isinstance(template, str) else None,
    )


def _first_not_none(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
