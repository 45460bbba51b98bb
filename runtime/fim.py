"""Fill-in-the-middle prompt layouts: the one definition used by serving and by training.

A layout is a pure function from token ids to token ids, so what a model is trained on
(``training`` imports :func:`fim_layout`) and what it is prompted with cannot drift apart.

Code Llama (and the StarCoder, Qwen and DeepSeek families, which share its structure):

- PSM: ``[BOS] PRE prefix SUF suffix MID`` -> the model writes the middle, then EOT.
- SPM: ``[BOS] PRE SUF suffix MID prefix`` -> the model continues with the middle.

Codestral has a single layout: ``[BOS] SUFFIX suffix PREFIX prefix`` -> middle.

The suffix (and, in training, the middle) must be encoded without sentencepiece's
implicit leading space; the prefix keeps it. That rule lives in the tokenizer wrappers,
not here: this module only arranges ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class FimMode(StrEnum):
    """Order of the parts in the prompt."""

    PSM = "psm"
    SPM = "spm"


class FimFamily(StrEnum):
    """Which special-token vocabulary (and so which layout) a model uses."""

    CODELLAMA = "codellama"
    STARCODER = "starcoder"
    QWEN = "qwen"
    DEEPSEEK = "deepseek"
    CODESTRAL = "codestral"
    CUSTOM = "custom"


@dataclass(frozen=True)
class FimTokens:
    """The special ids a FIM prompt needs, as found in one model's vocabulary."""

    family: FimFamily
    pre: int
    suf: int
    mid: int | None
    eot: int | None = None
    bos: int | None = None
    # Repository-level context (Qwen2.5-Coder): ``<|repo_name|>`` and ``<|file_sep|>``.
    repo_name: int | None = None
    file_sep: int | None = None

    @property
    def modes(self) -> tuple[FimMode, ...]:
        """Layouts this family was trained with (Codestral knows only suffix-first)."""
        if self.family is FimFamily.CODESTRAL:
            return (FimMode.SPM,)
        return (FimMode.PSM, FimMode.SPM)


@dataclass(frozen=True)
class _FamilyPieces:
    pre: tuple[str, ...]
    suf: tuple[str, ...]
    mid: tuple[str, ...]
    eot: tuple[str, ...]
    repo_name: tuple[str, ...] = ()
    file_sep: tuple[str, ...] = ()


# Token texts per family, in the spelling the GGUF vocabulary stores them.
FAMILY_PIECES: Mapping[FimFamily, _FamilyPieces] = {
    FimFamily.CODELLAMA: _FamilyPieces(
        ("▁<PRE>", "<PRE>"), ("▁<SUF>", "<SUF>"), ("▁<MID>", "<MID>"), ("▁<EOT>", "<EOT>")
    ),
    FimFamily.STARCODER: _FamilyPieces(
        ("<fim_prefix>", "<fim-prefix>"),
        ("<fim_suffix>", "<fim-suffix>"),
        ("<fim_middle>", "<fim-middle>"),
        ("<|endoftext|>", "<file_sep>"),
    ),
    FimFamily.QWEN: _FamilyPieces(
        ("<|fim_prefix|>",),
        ("<|fim_suffix|>",),
        ("<|fim_middle|>",),
        ("<|endoftext|>", "<|fim_pad|>"),
        ("<|repo_name|>",),
        ("<|file_sep|>",),
    ),
    FimFamily.DEEPSEEK: _FamilyPieces(
        ("<｜fim▁begin｜>",),
        ("<｜fim▁hole｜>",),
        ("<｜fim▁end｜>",),
        ("<｜end▁of▁sentence｜>", "<|EOT|>"),
    ),
    FimFamily.CODESTRAL: _FamilyPieces(("[PREFIX]",), ("[SUFFIX]",), ("[MIDDLE]",), ("</s>",)),
}


def fim_layout(
    tokens: FimTokens,
    prefix_ids: Sequence[int],
    suffix_ids: Sequence[int],
    mode: FimMode = FimMode.PSM,
) -> list[int]:
    """Arrange prefix and suffix ids into the prompt the model was trained to complete.

    The model's answer (the middle) follows the returned ids directly.
    """
    head = [tokens.bos] if tokens.bos is not None else []
    if tokens.family is FimFamily.CODESTRAL:
        return [*head, tokens.suf, *suffix_ids, tokens.pre, *prefix_ids]
    if tokens.mid is None:
        raise ValueError(f"{tokens.family.value} FIM tokens lack a middle token")
    if mode is FimMode.SPM:
        return [*head, tokens.pre, tokens.suf, *suffix_ids, tokens.mid, *prefix_ids]
    return [*head, tokens.pre, *prefix_ids, tokens.suf, *suffix_ids, tokens.mid]


def repo_head(
    tokens: FimTokens,
    repo_ids: Sequence[int],
    files: Sequence[tuple[Sequence[int], Sequence[int]]],
    path_ids: Sequence[int],
) -> list[int]:
    """The repository-level preamble that goes before the FIM part of the prompt.

    ``<|repo_name|>name\n`` then, per other file, ``<|file_sep|>path\ncontent`` (``files``
    holds the ids of ``path\n`` and of the content), then ``<|file_sep|>path\n`` of the file
    being edited. Only for vocabularies with both tokens (see :attr:`FimTokens.repo_name`).
    """
    if tokens.repo_name is None or tokens.file_sep is None:
        raise ValueError(f"{tokens.family.value} FIM tokens have no repository-level form")
    head = [tokens.repo_name, *repo_ids]
    for file_path_ids, content_ids in files:
        head += [tokens.file_sep, *file_path_ids, *content_ids]
    return [*head, tokens.file_sep, *path_ids]


def prefix_only_layout(prefix_ids: Sequence[int], bos: int | None) -> list[int]:
    """Prompt for a model without FIM tokens: it can only continue the prefix."""
    return ([bos] if bos is not None else []) + list(prefix_ids)


def detect_fim(
    token_id: Callable[[str], int | None],
    token_text: Callable[[int], str | None],
    *,
    pre: int | None = None,
    suf: int | None = None,
    mid: int | None = None,
    eot: int | None = None,
    eos: int | None = None,
    bos: int | None = None,
) -> FimTokens | None:
    """Find a model's FIM tokens.

    Ids stated by the file's metadata (``tokenizer.ggml.fim_*_token_id``) win; otherwise
    the vocabulary is searched for each family's token texts. ``token_id`` maps a text to
    its id (or None), ``token_text`` an id to its text. Returns None for a model without
    FIM tokens.
    """
    if pre is not None and suf is not None:
        family = _family_of(token_text(pre) or "")
        pieces = FAMILY_PIECES.get(family)
        if eot is None and pieces is not None:
            eot = _first_id(token_id, pieces.eot)
        repo, sep = _repo_ids(token_id, pieces)
        return FimTokens(family, pre, suf, mid, eot if eot is not None else eos, bos, repo, sep)
    for family, pieces in FAMILY_PIECES.items():
        ids = [_first_id(token_id, texts) for texts in (pieces.pre, pieces.suf, pieces.mid)]
        needs_mid = family is not FimFamily.CODESTRAL
        if ids[0] is None or ids[1] is None or (needs_mid and ids[2] is None):
            continue
        eot_id = eot if eot is not None else _first_id(token_id, pieces.eot)
        eot_id = eot_id if eot_id is not None else eos
        repo, sep = _repo_ids(token_id, pieces)
        return FimTokens(family, ids[0], ids[1], ids[2], eot_id, bos, repo, sep)
    return None


def _repo_ids(
    token_id: Callable[[str], int | None], pieces: _FamilyPieces | None
) -> tuple[int | None, int | None]:
    if pieces is None:
        return None, None
    repo, sep = _first_id(token_id, pieces.repo_name), _first_id(token_id, pieces.file_sep)
    return (repo, sep) if repo is not None and sep is not None else (None, None)


def _family_of(text: str) -> FimFamily:
    for family, pieces in FAMILY_PIECES.items():
        if text in pieces.pre:
            return family
    return FimFamily.CUSTOM


def _first_id(token_id: Callable[[str], int | None], texts: Sequence[str]) -> int | None:
    for text in texts:
        found = token_id(text)
        if found is not None:
            return found
    return None
