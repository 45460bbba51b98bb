"""General code mixed into tuning: the standard library, without its tests or the tuned
repository, in a share of the examples that a resumed run draws the same way."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from llamacode.runtime.fim import FimFamily, FimTokens
from llamacode.training.replay import MixedSource, standard_library
from llamacode.training.repo_data import RepoFile
from llamacode.training.repo_fim import ExampleConfig, ExampleSource

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FIM = FimTokens(FimFamily.CUSTOM, pre=1, suf=2, mid=3, eot=4)


def _encode(text: str) -> list[int]:
    return [10 + b for b in text.encode()]


def test_standard_library_is_library_code_without_tests():
    corpus = standard_library()
    paths = {f.path for f in corpus.files}
    assert {"json/decoder.py", "asyncio/events.py", "functools.py"} <= paths
    assert not any("/test/" in f"/{p}" or "/tests/" in f"/{p}" for p in paths)
    assert not any(p.startswith("site-packages/") for p in paths)


def test_a_repository_inside_the_standard_library_is_not_replayed():
    """Tuning on asyncio replays everything but asyncio, so general code is not the
    repository under another name."""
    corpus = standard_library(exclude=STDLIB / "asyncio")
    paths = {f.path for f in corpus.files}
    assert not any(p.startswith("asyncio/") for p in paths)
    assert "json/decoder.py" in paths
    assert len(standard_library(exclude=Path("/nowhere")).files) > len(corpus.files)


def _source(path: str, seed: int) -> ExampleSource:
    text = "".join(f"def {path}_{i}(x):\n    return x + {i}\n" for i in range(30))
    return ExampleSource([RepoFile(f"{path}.py", text)], _encode, FIM, ExampleConfig(), seed)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
def test_mixture_takes_the_share_of_general_examples_asked_for(share):
    mixture = MixedSource(_source("mine", 0), _source("general", 2), share)
    drawn = [mixture.example(i).path for i in range(2000)]
    assert abs(drawn.count("general.py") / len(drawn) - share) < 0.03
    again = MixedSource(_source("mine", 0), _source("general", 2), share)
    assert [again.example(i).path for i in range(200)] == drawn[:200]


def test_no_replay_draws_every_example_from_the_repository():
    mixture = MixedSource(_source("mine", 0), _source("general", 2), 0.0)
    assert {mixture.example(i).path for i in range(200)} == {"mine.py"}
