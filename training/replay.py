"""General code mixed into tuning, so the model keeps what it knew about code at large.

A LoRA trained only on one repository drifts on everything else: on the general
single-line set the 0.5B lost points in the layout it is served in. Code Llama's
instruction tuning answers the same drift by mixing a small share of its original code
data back in; here that data is the Python standard library that every llamacode install
runs on (well-written general code, present offline), less its tests and anything inside
the repository being tuned. A quarter of replay in a 20-minute run did not hold the general
set on two repositories (bench/RESULTS.md), so it is off unless asked for.
"""

from __future__ import annotations

import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llamacode.training.repo_data import RepoFile, read_sources
from llamacode.training.repo_fim import ExampleSource, FimExample

# Folders of the standard library that hold tests and their data, not library code.
TEST_DIRS = frozenset({"test", "tests", "idle_test", "ensurepip"})


@dataclass(frozen=True)
class ReplayCorpus:
    """Where the general code came from, for the run record."""

    root: Path
    files: tuple[RepoFile, ...]


def standard_library(exclude: Path | None = None) -> ReplayCorpus:
    """The standard library's own modules; files under ``exclude`` (the tuned repository,
    when it is itself a part of the standard library) are left out."""
    root = Path(sysconfig.get_paths()["stdlib"]).resolve()
    inside = None
    if exclude is not None:
        try:
            inside = PurePosixPath(exclude.resolve().relative_to(root).as_posix())
        except ValueError:
            inside = None

    def wanted(rel: str) -> bool:
        path = PurePosixPath(rel)
        if any(part in TEST_DIRS for part in path.parts[:-1]):
            return False
        return inside is None or not path.is_relative_to(inside)

    # Not git's view: an install can sit inside a work tree that ignores it.
    files, _ = read_sources(root, wanted, use_git=False)
    return ReplayCorpus(root, tuple(files))


class MixedSource:
    """Examples from ``repo``, with a ``share`` of them from ``general`` instead.

    Whether example ``i`` is general code depends only on the seed and ``i``, so a resumed
    run sees the same mixture.
    """

    def __init__(self, repo: ExampleSource, general: ExampleSource | None, share: float) -> None:
        self.repo = repo
        self.general = general if share > 0 else None
        self.share = share
        self.seed = repo.seed

    def example(self, index: int) -> FimExample:
        """Example number ``index`` of the mixture."""
        draw = random.Random(f"replay:{self.seed}:{index}").random()
        if self.general is not None and draw < self.share:
            return self.general.example(index)
        return self.repo.example(index)
