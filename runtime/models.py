"""Where the model comes from: flag or config, ``LLAMACODE_MODEL``, the models directory.

Nothing here downloads anything. The models directory holds the user's own GGUF files and
the catalog models `llamacode models install` placed there (runtime/catalog.py); a catalog
file is checked against its size and sha256 before it is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from llamacode.runtime.catalog import (
    CATALOG,
    QWEN_05B,
    QWEN_15B,
    SMOLLM2,
    CatalogModel,
    catalog_model,
)
from llamacode.runtime.errors import ModelNotFoundError
from llamacode.runtime.install import installed_path, verify

ENV_MODEL = "LLAMACODE_MODEL"
ENV_MODELS_DIR = "LLAMACODE_MODELS_DIR"
# Our own FIM model, trained and quantized by this repository (runtime/weights/MODEL_CARD.md).
# It does not beat the catalog models, so it serves only when chosen or when nothing else is
# installed.
FIM_MODEL = Path(__file__).resolve().parent / "weights" / "llamacode-fim-small.Q8_0.gguf"


class Role(StrEnum):
    """What a model is used for: the catalog has a preferred model for each."""

    TYPING = "typing"  # suggestions shown while the user types: latency first
    ASKED = "asked"  # explicit requests, chat and the CLI: quality first


# Catalog models in order of preference per role (measured: bench/RESULTS.md). While
# typing, the 0.5B answers within the latency goal; asked, the 1.5B is far better.
PREFERENCE: dict[Role, tuple[CatalogModel, ...]] = {
    Role.TYPING: (QWEN_05B, QWEN_15B, SMOLLM2),
    Role.ASKED: (QWEN_15B, QWEN_05B, SMOLLM2),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model file, the place in the resolution order it came from, and its catalog entry."""

    path: Path
    source: str
    catalog: CatalogModel | None = None


def data_dir() -> Path:
    """llamacode's data directory (XDG): models, tuned adapters."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llamacode"


def models_dir() -> Path:
    """The user's models directory (``$LLAMACODE_MODELS_DIR`` or the XDG data dir)."""
    explicit = os.environ.get(ENV_MODELS_DIR)
    if explicit:
        return Path(explicit).expanduser()
    return data_dir() / "models"


def catalog_path(model: CatalogModel | str) -> Path:
    """Where a catalog model is (or would be) installed."""
    entry = catalog_model(model) if isinstance(model, str) else model
    if entry is None:
        raise ModelNotFoundError(f"{model!r} is not in the catalog; see `llamacode models`")
    return installed_path(entry, models_dir())


def _user_models(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    catalog_files = {m.file_name for m in CATALOG}
    found = [p for p in directory.glob("*.gguf") if p.is_file() and p.name not in catalog_files]
    # Newest first: the model the user placed last is the one they mean.
    return sorted(found, key=lambda p: (-p.stat().st_mtime, p.name))


def available_models(
    explicit: str | os.PathLike[str] | None = None, role: Role = Role.ASKED
) -> list[ResolvedModel]:
    """Every model llamacode can see, in resolution order (the first one is used).

    The user's own choices come first (flag, ``$LLAMACODE_MODEL``, files they put in the
    models directory), then installed catalog models in ``role``'s order of preference,
    then the small FIM model this repository trains.
    """
    found: list[ResolvedModel] = []
    if explicit:
        found.append(ResolvedModel(Path(explicit).expanduser(), "flag"))
    env = os.environ.get(ENV_MODEL)
    if env:
        found.append(ResolvedModel(Path(env).expanduser(), f"${ENV_MODEL}"))
    directory = models_dir()
    found.extend(ResolvedModel(p, f"models dir ({directory})") for p in _user_models(directory))
    for entry in PREFERENCE[role]:
        path = installed_path(entry, directory)
        if path.is_file():
            found.append(ResolvedModel(path, f"catalog ({entry.name})", entry))
    if FIM_MODEL.is_file():
        found.append(ResolvedModel(FIM_MODEL, "packaged FIM model (runtime/weights)"))
    return found


def resolve_model(
    explicit: str | os.PathLike[str] | None = None, role: Role = Role.ASKED
) -> ResolvedModel:
    """The model to use: the first in :func:`available_models` order, checked.

    An explicit path or ``$LLAMACODE_MODEL`` that does not exist is an error, never a
    silent fall-through to another model. A catalog file whose bytes changed is an error.
    """
    candidates = available_models(explicit, role)
    if not candidates:
        raise ModelNotFoundError(
            "no model found. Run `llamacode models install qwen2.5-coder-1.5b` (or `make run`), "
            f"pass --model PATH.gguf, set LLAMACODE_MODEL, or put a .gguf file in {models_dir()}."
        )
    first = candidates[0]
    if not first.path.is_file():
        raise ModelNotFoundError(
            f"model file not found: {first.path} (from {first.source}). Check the path, or "
            "run `llamacode models` to see the models llamacode can find."
        )
    if first.catalog is not None:
        verify(first.catalog, first.path)
    return first
