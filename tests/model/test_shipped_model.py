"""The shipped FIM model: it loads, its FIM tokens are found, it infills and stops at EOT,
`llamacode models` lists it (after the default, which it does not yet beat), and its card
says where its data came from and under which licenses."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.fim import FimFamily, FimMode
from llamacode.runtime.model_facts import read_facts
from llamacode.runtime.models import FIM_MODEL, available_models, resolve_model
from llamacode.training.corpus import ALLOWED_SPDX

SHIPPED = FIM_MODEL
CARD = FIM_MODEL.parent / "MODEL_CARD.md"
ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "evals" / "fim_stdlib_python.jsonl.gz"
# Two tasks of the shipped set on which the model (greedy) writes a middle and ends it with
# EOT; on most others it is too weak to stop within the token limit (see the model card).


@pytest.fixture
def no_user_models(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLAMACODE_MODEL", raising=False)
    monkeypatch.setenv("LLAMACODE_MODELS_DIR", str(tmp_path / "no-models"))


@pytest.fixture(scope="module")
def engine():
    engine = Engine.load(SHIPPED, EngineConfig(n_ctx=2048, n_threads=1))
    yield engine
    engine.close()


def test_shipped_model_is_a_small_codellama_style_fim_model():
    assert SHIPPED.is_file(), "runtime/weights holds the model: run `make model`"
    facts = read_facts(SHIPPED)
    assert facts.size_bytes <= 30 * 2**20
    assert facts.architecture == "llama"
    assert facts.fim is not None and facts.fim.family is FimFamily.CODELLAMA
    assert facts.eot == facts.fim.eot
    assert facts.rope_freq_base == pytest.approx(1e6) and facts.rope_freq_base_stated
    assert facts.n_ctx_train >= 2048


def _shipped_task(index: int) -> dict:
    with gzip.open(TASKS, "rt", encoding="utf-8") as f:
        return json.loads(f.readlines()[index])


@pytest.mark.parametrize(
    ("index", "path", "mode"),
    [(6, "bisect.py", FimMode.PSM), (16, "heapq.py", FimMode.SPM)],
)
def test_shipped_model_infills_and_stops_at_eot(engine, index: int, path: str, mode: FimMode):
    task = _shipped_task(index)
    assert task["path"] == path
    config = GenerationConfig(max_tokens=64, fim_mode=mode)
    result = engine.infill(task["prefix"], task["suffix"], config=config)
    assert result.prompt_mode == mode.value
    assert result.stop_reason == "eot"
    assert result.text.strip() and result.generated_tokens < 64


def test_packaged_fim_model_is_listed_last_and_serves_when_nothing_else_is_there(
    no_user_models,
):
    found = available_models()
    assert found[-1].path == SHIPPED and found[-1].source.startswith("packaged FIM model")
    assert resolve_model().path == SHIPPED  # an empty models directory


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LLAMACODE_MODEL"}
    env["LLAMACODE_MODELS_DIR"] = str(tmp_path / "no-models")
    return subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_models_lists_our_fim_model(tmp_path: Path):
    out = _cli("models", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["path"]: r for r in json.loads(out.stdout)["models"]}
    assert rows[str(SHIPPED)]["fim"] == "codellama"
    assert sorted(rows[str(SHIPPED)]["used_for"]) == ["asked", "typing"]


def test_infill_verb_runs_our_model_in_spm(tmp_path: Path):
    task = _shipped_task(16)
    out = _cli(
        "infill", "--model", str(SHIPPED), "--prefix", task["prefix"], "--suffix", task["suffix"],
        "-n", "64", tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "[spm: eot" in out.stderr, out.stderr


def _card_sources() -> dict[str, str]:
    """``package -> license`` from the card's data-sources table."""
    text = CARD.read_text(encoding="utf-8")
    section = text.split("## Data sources", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] != "package" and set(cells[0]) - set("-: "):
            rows[cells[0]] = cells[2]
    return rows


def test_model_card_names_the_license_of_every_data_source():
    assert CARD.is_file()
    sources = _card_sources()
    assert sources.get("python-stdlib") == "PSF-2.0"
    assert len(sources) > 10
    for package, license_ in sources.items():
        parts = re.split(r"\s+(?:AND|OR)\s+", license_)
        assert parts and all(p in ALLOWED_SPDX for p in parts), (package, license_)
    text = CARD.read_text(encoding="utf-8")
    for heading in ("tokens seen", "steps", "hardware", "time"):
        assert heading in text.lower()
