"""FIM training examples cut from a repository's files, laid out as the editor asks.

Each example is one file cut at two character positions into prefix, middle and suffix,
in the model's own FIM tokens and layouts (PSM, SPM, or the two in turn), in the
repository-level form (pieces of neighbouring files first, each after a ``<|file_sep|>``
path line, then the file's own path). The prompt comes from :func:`runtime.infill_prompt.infill_ids`, the function the
engine builds serving prompts with; the middle and the end-of-middle token follow, and
only those carry the loss.

Example ``i`` depends only on the files, the settings, the seed and ``i``, so a resumed
run sees exactly the examples the uninterrupted run would have seen.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import PurePosixPath

from llamacode.runtime.fim import FimMode, FimTokens
from llamacode.runtime.infill_prompt import infill_ids
from llamacode.runtime.types import ContextFile
from llamacode.training.evaluation.fim_tasks import clip_context
from llamacode.training.repo_data import RepoFile


@dataclass(frozen=True)
class ExampleConfig:
    """How examples are cut (``llamacode tune`` flags mirror the fields that matter)."""

    seq_len: int = 512
    # The FIM layouts taught, taken in turn: example i is in modes[i % len(modes)].
    modes: tuple[FimMode, ...] = (FimMode.PSM, FimMode.SPM)
    # Middles, shaped as the editor asks for them: whole lines from their indentation
    # (the cursor after Enter; one line in half of them, else up to max_middle_lines),
    # the rest of a line from a cursor anywhere in it, or else a span of up to
    # max_middle_chars ending anywhere. With half the middles ending anywhere, adapters
    # cost the general set 2-6 points; shaped so, it held (bench/RESULTS.md).
    whole_lines_rate: float = 0.4
    line_rest_rate: float = 0.4
    max_middle_lines: int = 6
    max_middle_chars: int = 200
    # Pieces of other files in the same folder, as the editor sends neighbouring files.
    neighbour_rate: float = 0.5
    max_neighbours: int = 2
    neighbour_chars: int = 1200
    # Neighbours get at most this share of the prompt, as serving gives other files.
    neighbour_share: float = 0.25


@dataclass(frozen=True)
class FimExample:
    """Token ids; the loss is taken on ``ids[target_start:]`` (the middle and its end).
    The texts it was built from come with it."""

    ids: tuple[int, ...]
    target_start: int
    path: str
    prefix: str
    middle: str
    suffix: str
    context: tuple[ContextFile, ...]
    mode: FimMode


class ExampleSource:
    """Deterministic FIM examples from ``files`` (chosen in proportion to their size)."""

    def __init__(
        self,
        files: Sequence[RepoFile],
        encode: Callable[[str], list[int]],
        fim: FimTokens,
        config: ExampleConfig | None = None,
        seed: int = 0,
    ) -> None:
        if fim.eot is None or fim.mid is None:
            raise ValueError("FIM tuning needs a model with middle and end-of-middle tokens")
        self.files = list(files)
        self.encode = encode
        self.fim = fim
        self.config = config or ExampleConfig()
        if not self.config.modes:
            raise ValueError("FIM tuning needs at least one layout")
        self.seed = seed
        self._cumulative = list(accumulate(len(f.text) for f in self.files))
        self._folders: dict[str, list[int]] = {}
        for i, f in enumerate(self.files):
            self._folders.setdefault(str(PurePosixPath(f.path).parent), []).append(i)

    def example(self, index: int) -> FimExample:
        """Example number ``index`` of this source."""
        rng = random.Random(f"{self.seed}:{index}")
        mode = self.config.modes[index % len(self.config.modes)]
        pick = bisect.bisect_right(self._cumulative, rng.randrange(self._cumulative[-1]))
        file = self.files[pick]
        prefix, middle, suffix = self._cut(file.text, rng)
        middle, middle_ids = self._middle_ids(middle)
        suffix = file.text[len(prefix) + len(middle) :]
        # Room for the prompt; the FIM layout adds up to four tokens of its own.
        budget = self.config.seq_len - len(middle_ids) - 1 - 4
        context = self._neighbours(pick, rng, int(budget * self.config.neighbour_share))
        # Only what the budget can keep is tokenized: whole lines nearest the middle.
        prefix, suffix = clip_context(prefix, suffix, 6 * budget)
        prompt = infill_ids(
            self.fim,
            self.encode,
            self.encode,
            prefix,
            suffix,
            context=context,
            path=file.path,
            mode=mode,
            budget=budget,
        )
        ids = (*prompt, *middle_ids, self.fim.eot)
        return FimExample(ids, len(prompt), file.path, prefix, middle, suffix, context, mode)

    def _cut(self, text: str, rng: random.Random) -> tuple[str, str, str]:
        """Prefix, middle, suffix around a cursor drawn uniformly over the characters."""
        config = self.config
        cursor = rng.randrange(len(text))
        shape = rng.random()
        if shape < config.whole_lines_rate:
            start, end = _whole_lines(text, cursor, rng, config.max_middle_lines)
        elif shape < config.whole_lines_rate + config.line_rest_rate:
            start, end = cursor, _line_end(text, cursor)
            end = min(end, start + config.max_middle_chars)
            if end == start:  # the cursor at a line's end: the middle is the next line
                end = _line_end(text, start + 1)
        else:
            start = cursor
            end = min(len(text), start + rng.randint(1, config.max_middle_chars))
        return text[:start], text[start:end], text[end:]

    def _middle_ids(self, middle: str) -> tuple[str, list[int]]:
        """The middle, shortened to a quarter of the sequence, and its ids."""
        limit = self.config.seq_len // 4
        ids = self.encode(middle)
        while len(ids) > limit:
            middle = middle[: len(middle) // 2]
            ids = self.encode(middle)
        return middle, ids

    def _neighbours(self, pick: int, rng: random.Random, budget: int) -> tuple[ContextFile, ...]:
        config = self.config
        if rng.random() >= config.neighbour_rate or budget <= 0:
            return ()
        folder = str(PurePosixPath(self.files[pick].path).parent)
        others = [i for i in self._folders[folder] if i != pick]
        chosen = sorted(rng.sample(others, min(config.max_neighbours, len(others))))
        pieces = []
        left = budget
        for n, i in enumerate(chosen):
            path = self.files[i].path
            # An even share of what is left, at about three characters a token.
            chars = min(config.neighbour_chars, 3 * left // (len(chosen) - n))
            piece = _piece(self.files[i].text, rng, chars)
            cost = len(self.encode(f"{path}\n{piece}")) + 1
            while cost > left and len(piece) >= 80:
                piece = (
                    piece[: piece.rfind("\n", 0, len(piece) // 2) + 1] or piece[: len(piece) // 2]
                )
                cost = len(self.encode(f"{path}\n{piece}")) + 1
            if cost > left or not piece.strip():
                continue
            left -= cost
            pieces.append(ContextFile(path, piece))
        return tuple(pieces)


def _piece(text: str, rng: random.Random, chars: int) -> str:
    """A window of whole lines, about ``chars`` long, from a random line of ``text``."""
    if len(text) <= chars:
        return text
    start = rng.randrange(len(text) - chars)
    start = text.rfind("\n", 0, start) + 1
    end = text.rfind("\n", start, start + chars)
    return text[start : end + 1 if end > start else start + chars]


def _line_end(text: str, at: int) -> int:
    """Where the line holding ``at`` ends (its newline, or the end of the text)."""
    end = text.find("\n", at)
    return len(text) if end == -1 else end


def _whole_lines(text: str, cursor: int, rng: random.Random, most: int) -> tuple[int, int]:
    """From the first non-blank character of the first non-blank line at or after the
    cursor's line, to the end of that line or of up to ``most`` lines."""
    start = text.rfind("\n", 0, cursor) + 1
    while start < len(text):
        end = _line_end(text, start)
        code = text[start:end].lstrip()
        if code:
            start = end - len(code)
            break
        start = end + 1
    else:  # only blank lines from the cursor on: the middle is the last character
        return len(text) - 1, len(text)
    lines = 1 if rng.random() < 0.5 else rng.randint(2, max(2, most))
    end = _line_end(text, start)
    for _ in range(lines - 1):
        if end + 1 >= len(text):
            break
        end = _line_end(text, end + 1)
    return start, end
