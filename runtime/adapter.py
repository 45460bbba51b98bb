"""LoRA adapters in GGUF: read by the bounds-checked reader and checked against the model
before llama.cpp sees them.

llama.cpp says no more than "failed to initialize LoRA adapter" about an adapter it
refuses, and aborts the whole process on some it accepts (a metadata value of the wrong
type, an embedding adapter on a model whose output shares the embeddings). Each check here
names the problem and what to do instead.

The layout is llama.cpp's (src/llama-adapter.cpp): ``general.type`` "adapter",
``adapter.type`` "lora", ``adapter.lora.alpha``, and for each adapted model tensor ``W`` a
pair ``W.lora_a`` (ggml shape [in, rank]) and ``W.lora_b`` ([rank, out]), applied as
``W x + scale * (alpha / rank) * B (A x)``. The token embeddings are the exception: their
pair is stored flipped (``lora_a`` [rank, vocab], ``lora_b`` [rank, embd]).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf.constants import (
    MODEL_TENSOR,
    TENSOR_NAMES,
    GGMLQuantizationType,
    GGUFType,
    GGUFValueType,
    Keys,
)

from llamacode.runtime.errors import AdapterError, AdapterMismatchError, InvalidModelError
from llamacode.runtime.gguf_file import GGUFHeader, TensorInfo, read_header

log = logging.getLogger("llamacode.runtime")

# adapter.type of a LoRA adapter, and the suffixes of its tensors, as llama.cpp reads them.
LORA_ADAPTER_TYPE = "lora"
LORA_A_SUFFIX = ".lora_a"
LORA_B_SUFFIX = ".lora_b"
# Norm vectors that some exporters add; llama.cpp skips them.
IGNORED_SUFFIX = "_norm.weight"
# The tensor types llama.cpp multiplies adapter pairs in (what its own exporter writes).
LORA_TENSOR_TYPES = (
    GGMLQuantizationType.F32,
    GGMLQuantizationType.F16,
    GGMLQuantizationType.BF16,
    GGMLQuantizationType.Q8_0,
)
TOKEN_EMBD = TENSOR_NAMES[MODEL_TENSOR.TOKEN_EMBD] + ".weight"
OUTPUT = TENSOR_NAMES[MODEL_TENSOR.OUTPUT] + ".weight"
_NEXT_STEP = "Export the adapter again from training (llamacode.convert.lora_gguf)."


@dataclass(frozen=True)
class LoraPair:
    """One adapted model tensor: the ggml shapes of its A and B."""

    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return self.b_shape[0]  # B is [rank, out] for every tensor, embeddings included


@dataclass(frozen=True)
class AdapterFacts:
    """What a LoRA adapter GGUF says about itself."""

    path: Path
    name: str | None
    architecture: str
    alpha: float | None  # None: not stated, llama.cpp then scales by the user's scale alone
    base_model: str | None  # general.name of the model it was made for, when recorded
    pairs: dict[str, LoraPair]  # model tensor name -> shapes
    size_bytes: int

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(sorted({pair.rank for pair in self.pairs.values()}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "alpha": self.alpha,
            "ranks": list(self.ranks),
            "tensors": len(self.pairs),
            "base_model": self.base_model,
            "size_bytes": self.size_bytes,
        }


def read_adapter(path: str | Path) -> AdapterFacts:
    """Read and check a LoRA adapter GGUF on its own (not yet against a model)."""
    path = Path(path)
    if not path.is_file():
        raise AdapterError(
            f"LoRA adapter not found: {path}. Check the --adapter path (adapterPath in the "
            "editor's settings)."
        )
    try:
        header = read_header(path)
    except InvalidModelError as exc:
        raise AdapterError(f"{path} cannot be used as a LoRA adapter: {exc}") from exc
    kind = _string(header, Keys.General.TYPE)
    if kind != GGUFType.ADAPTER:
        what = "a model" if kind in (None, GGUFType.MODEL) else f"a {kind!r} file"
        raise AdapterError(
            f"{path} is {what}, not a LoRA adapter. Pass a model with --model; an adapter is "
            f"the GGUF with {Keys.General.TYPE} = {GGUFType.ADAPTER!r} that training exports."
        )
    adapter_type = _string(header, Keys.Adapter.TYPE)
    if adapter_type != LORA_ADAPTER_TYPE:
        raise AdapterError(
            f"{path} is a {adapter_type or 'untyped'} adapter; llamacode applies LoRA adapters "
            f"({Keys.Adapter.TYPE} = {LORA_ADAPTER_TYPE!r}) only."
        )
    architecture = _string(header, Keys.General.ARCHITECTURE)
    if not architecture:
        raise AdapterError(
            f"{path} does not say which architecture it adapts ({Keys.General.ARCHITECTURE}). "
            + _NEXT_STEP
        )
    return AdapterFacts(
        path=path,
        name=_string(header, Keys.General.NAME),
        architecture=architecture,
        alpha=_alpha(header),
        base_model=_base_model(header),
        pairs=_pairs(header),
        size_bytes=header.file_size,
    )


def fit_adapter(adapter_path: str | Path, model_path: str | Path) -> AdapterFacts:
    """Read the adapter and check it against the model at ``model_path``."""
    adapter = read_adapter(adapter_path)
    check_fits(adapter, model_path)
    return adapter


def check_fits(adapter: AdapterFacts, model_path: str | Path) -> None:
    """Refuse an adapter whose architecture, tensor names or shapes are not the model's
    (read from the model's header: no weights are loaded)."""
    skip = (Keys.Tokenizer.MERGES, Keys.Tokenizer.SCORES)  # vocabulary arrays not needed here
    model = read_header(model_path, skip_arrays=skip)
    made_for = f" (it was made for {adapter.base_model})" if adapter.base_model else ""
    model_name = str(model.get(Keys.General.NAME, model.path.name))

    def mismatch(problem: str) -> AdapterMismatchError:
        return AdapterMismatchError(
            f"the LoRA adapter {adapter.path} does not fit {model_name}{made_for}: {problem}. "
            "Use the model the adapter was trained on, or train one for this model."
        )

    if adapter.architecture != model.architecture:
        raise mismatch(
            f"it adapts {adapter.architecture} models and this is a {model.architecture} model"
        )
    tensors = {t.name: t for t in model.tensors}
    for name, pair in adapter.pairs.items():
        tensor = tensors.get(name)
        if tensor is None:
            raise mismatch(f"it adapts {name}, which the model does not have")
        if len(tensor.shape) != 2:
            raise mismatch(f"{name} is not a matrix in the model")
        if not _shapes_fit(name, pair, tensor):
            raise mismatch(
                f"{name} is {_dims(tensor.shape)} in the model, but the adapter's pair is "
                f"{_dims(pair.a_shape)} and {_dims(pair.b_shape)}"
            )
        if name == TOKEN_EMBD and OUTPUT not in tensors:
            raise mismatch(
                f"it adapts {TOKEN_EMBD}, which this model also uses as its output; llama.cpp "
                "cannot apply an embedding adapter there"
            )
    if adapter.base_model and adapter.base_model != model_name:
        log.warning(
            "the LoRA adapter %s was made for %s; its tensors fit %s, so it is applied",
            adapter.path,
            adapter.base_model,
            model_name,
        )


def _string(header: GGUFHeader, key: str) -> str | None:
    """A string value; one stored with another type is refused (llama.cpp would abort)."""
    if key not in header.metadata:
        return None
    if header.types[key][0] != GGUFValueType.STRING:
        raise AdapterError(f"{header.path}: {key} is not a string. " + _NEXT_STEP)
    return str(header.metadata[key])


def _alpha(header: GGUFHeader) -> float | None:
    key = Keys.Adapter.LORA_ALPHA
    if key not in header.metadata:
        return None
    value = header.metadata[key]
    if header.types[key][0] != GGUFValueType.FLOAT32 or not math.isfinite(value):
        raise AdapterError(f"{header.path}: {key} is not a finite float32. " + _NEXT_STEP)
    return float(value)


def _base_model(header: GGUFHeader) -> str | None:
    count_key = Keys.General.BASE_MODEL_COUNT
    count = header.metadata.get(count_key)
    if header.types.get(count_key, (None,))[0] != GGUFValueType.UINT32 or not count:
        return None
    return _string(header, Keys.General.BASE_MODEL_NAME.format(id=0))


def _pairs(header: GGUFHeader) -> dict[str, LoraPair]:
    """Group the tensors into A/B pairs and check each pair on its own."""
    halves: dict[str, dict[str, TensorInfo]] = {}
    for tensor in header.tensors:
        for suffix in (LORA_A_SUFFIX, LORA_B_SUFFIX):
            if tensor.name.endswith(suffix):
                halves.setdefault(tensor.name.removesuffix(suffix), {})[suffix] = tensor
                break
        else:
            if not tensor.name.endswith(IGNORED_SUFFIX):
                raise AdapterError(
                    f"{header.path}: tensor {tensor.name} is neither a {LORA_A_SUFFIX} nor a "
                    f"{LORA_B_SUFFIX} half of a LoRA pair. " + _NEXT_STEP
                )
    if not halves:
        raise AdapterError(f"{header.path} holds no LoRA tensors. " + _NEXT_STEP)
    pairs = {}
    for name, half in sorted(halves.items()):
        a, b = half.get(LORA_A_SUFFIX), half.get(LORA_B_SUFFIX)
        if a is None or b is None:
            missing = LORA_A_SUFFIX if a is None else LORA_B_SUFFIX
            raise AdapterError(f"{header.path}: {name}{missing} is missing. " + _NEXT_STEP)
        for t in (a, b):
            if len(t.shape) != 2:
                raise AdapterError(f"{header.path}: {t.name} is not a matrix. " + _NEXT_STEP)
            if t.ggml_type not in LORA_TENSOR_TYPES:
                names = ", ".join(q.name for q in LORA_TENSOR_TYPES)
                raise AdapterError(
                    f"{header.path}: {t.name} is stored as type {t.ggml_type}; LoRA tensors are "
                    f"{names}. " + _NEXT_STEP
                )
        pair = LoraPair(a.shape, b.shape)
        if name != TOKEN_EMBD and a.shape[1] != b.shape[0]:
            raise AdapterError(
                f"{header.path}: the ranks of {name}'s pair differ ({_dims(a.shape)} and "
                f"{_dims(b.shape)}). " + _NEXT_STEP
            )
        pairs[name] = pair
    return pairs


def _shapes_fit(name: str, pair: LoraPair, tensor: TensorInfo) -> bool:
    """llama.cpp's rule: A reads the tensor's input, B writes its output (flipped for the
    token embeddings, whose A is indexed by token)."""
    n_in, n_out = tensor.shape
    if name == TOKEN_EMBD:
        return pair.b_shape[1] == n_in and pair.a_shape == (pair.b_shape[0], n_out)
    return pair.a_shape[0] == n_in and pair.b_shape[1] == n_out


def _dims(shape: tuple[int, ...]) -> str:
    """A ggml shape as rows x columns, the way numpy and PyTorch print it."""
    return " x ".join(str(d) for d in reversed(shape))
