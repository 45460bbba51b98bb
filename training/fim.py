"""The fill-in-the-middle transform of training documents (Bavarian et al. 2022, Code Llama).

With probability ``fim_rate`` a document is cut at two points drawn uniformly over its
characters into prefix, middle and suffix, and laid out half the time as PSM and half as
SPM. The prompt part comes from :func:`runtime.fim.fim_layout`, the very function that
builds serving prompts, so training and serving cannot disagree; the middle follows it,
then EOT. Suffix and middle are encoded without the implicit leading space. Loss is taken
on every token. Other documents stay plain: ``BOS text EOS``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from llamacode.runtime.fim import FimMode, FimTokens, fim_layout
from llamacode.training.tokenizer import Tokenizer


@dataclass(frozen=True)
class FimSplit:
    """A document cut into three parts, and the layout it is shown in."""

    prefix: str
    middle: str
    suffix: str
    mode: FimMode


def draw_split(text: str, rng: random.Random, spm_rate: float = 0.5) -> FimSplit:
    """Two cut points uniform over the document's characters (0..len inclusive)."""
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    mode = FimMode.SPM if rng.random() < spm_rate else FimMode.PSM
    return FimSplit(text[:a], text[a:b], text[b:], mode)


def encode_fim(tok: Tokenizer, fim: FimTokens, split: FimSplit) -> list[int]:
    """``fim_layout(prefix, suffix) + middle + EOT`` as token ids."""
    if fim.eot is None:
        raise ValueError("FIM training needs an EOT token")
    prompt = fim_layout(fim, tok.encode(split.prefix), tok.encode_nospace(split.suffix), split.mode)
    return [*prompt, *tok.encode_nospace(split.middle), fim.eot]


def transform_document(
    tok: Tokenizer,
    text: str,
    rng: random.Random,
    *,
    fim_rate: float = 0.9,
    spm_rate: float = 0.5,
) -> list[int]:
    """One document's training tokens: a FIM example with probability ``fim_rate``."""
    if tok.fim_ids is not None and rng.random() < fim_rate:
        return encode_fim(tok, tok.fim_tokens(), draw_split(text, rng, spm_rate))
    return tok.encode(text, bos=True, eos=True)
