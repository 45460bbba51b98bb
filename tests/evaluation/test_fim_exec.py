"""FIM with execution: canonical answers pass, wrong ones fail, limits fail, broken sandboxes error."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from llamacode.runtime.cli import main
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.training.evaluation.data import FimProblem, load_fim_problems
from llamacode.training.evaluation.errors import DataFormatError, EvaluationError
from llamacode.training.evaluation.execution import Judge
from llamacode.training.evaluation.fim_exec import FimExecConfig, evaluate_fim, judge_middle
from llamacode.training.evaluation.passk import mean_pass_at_k, pass_at_k
from llamacode.training.sandbox import Sandbox, SandboxLimits
from tests.evaluation.conftest import ADD_TEST as ADD
from tests.evaluation.conftest import EVALS


@pytest.fixture(scope="module")
def tiny_engine(codellama_gguf):
    engine = Engine.load(codellama_gguf, EngineConfig(n_ctx=512, n_threads=1))
    yield engine
    engine.close()


def test_canonical_solutions_of_the_shipped_set_all_pass(judge):
    problems = load_fim_problems(EVALS / "fim_smoke.jsonl")
    verdicts = [judge_middle(judge, p, p.canonical_solution) for p in problems]
    assert [v.outcome for v in verdicts] == ["passed"] * len(problems)


def test_wrong_middle_fails_with_the_assertion_as_detail(judge, add_problem):
    verdict = judge_middle(judge, add_problem, " return x * y")
    assert not verdict.passed
    assert verdict.outcome == "failed"
    assert "AssertionError" in verdict.detail


def test_infinite_loop_is_a_timeout_failure(judge, add_problem):
    verdict = judge_middle(judge, add_problem, "\n    while True:\n        pass")
    assert verdict.outcome == "timeout"
    assert not verdict.passed


def test_sandbox_that_cannot_start_is_an_error_not_a_failure(add_problem):
    broken = Judge(sandbox=Sandbox(SandboxLimits(), python="/nonexistent/python3"))
    with pytest.raises(EvaluationError, match="sandbox failed"):
        judge_middle(broken, add_problem, add_problem.canonical_solution)


def test_model_that_writes_the_right_middle_scores_one(tiny_engine, judge, add_problem):
    summary, details = evaluate_fim(tiny_engine, [add_problem], judge, progress=False)
    assert summary["modes"]["psm"]["pass@1"] == 1.0
    assert summary["modes"]["spm"]["pass@1"] == 1.0
    assert {d["middle"] for d in details} == {" return x + y"}


def test_model_that_writes_a_wrong_middle_scores_zero(tiny_engine, judge, sub_problem):
    summary, details = evaluate_fim(tiny_engine, [sub_problem], judge, progress=False)
    assert summary["modes"]["psm"]["pass@1"] == 0.0
    assert summary["modes"]["psm"]["outcomes"] == {"failed": 1}
    assert all(not d["passed"] for d in details)


def test_sampled_pass_at_k_counts_every_sample(tiny_engine, judge, add_problem, sub_problem):
    config = FimExecConfig(modes=("psm",), samples=3, ks=(1, 2), temperature=0.5)
    summary, details = evaluate_fim(
        tiny_engine, [add_problem, sub_problem], judge, config, progress=False
    )
    # The scripted model is certain of its answer, so sampling returns it every time.
    assert [d["samples_passed"] for d in details] == [3, 0]
    assert summary["modes"]["psm"]["pass@1 (sampled)"] == 0.5
    assert summary["modes"]["psm"]["pass@2 (sampled)"] == 0.5


def test_sandbox_error_stops_the_evaluation(tiny_engine, add_problem):
    broken = Judge(sandbox=Sandbox(SandboxLimits(), python="/nonexistent/python3"))
    with pytest.raises(EvaluationError):
        evaluate_fim(tiny_engine, [add_problem], broken, progress=False)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 0, 1, 0.0),
        (10, 10, 1, 1.0),
        (10, 3, 1, 0.3),
        (5, 2, 2, 1 - math.comb(3, 2) / math.comb(5, 2)),
        (20, 4, 10, 1 - math.comb(16, 10) / math.comb(20, 10)),
        (4, 3, 2, 1.0),
    ],
)
def test_pass_at_k_matches_the_combinatorial_definition(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 2, 6)
    assert mean_pass_at_k([(10, 3), (10, 0)], 1) == pytest.approx(0.15)


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    import gzip

    text = (EVALS / "fim_smoke.jsonl").read_text()
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    assert load_fim_problems(tmp_path / "p.jsonl.gz") == load_fim_problems(
        EVALS / "fim_smoke.jsonl"
    )


def test_rows_missing_fields_are_a_typed_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "prompt": "def f():"}) + "\n")
    with pytest.raises(DataFormatError, match="suffix"):
        load_fim_problems(bad)
    with pytest.raises(DataFormatError, match="not found"):
        load_fim_problems(tmp_path / "missing.jsonl")


def test_cli_prints_pass_at_1_and_records_model_hash_settings_and_versions(
    codellama_gguf, tmp_path, capsys, add_problem
):
    data = tmp_path / "tiny.jsonl"
    data.write_text(json.dumps(add_problem.__dict__) + "\n")
    out = tmp_path / "out"
    code = main(
        ["eval", "fim", str(data), "-m", str(codellama_gguf), "--ctx", "512",
         "--out", str(out), "--name", "run", "--no-progress", "--timeout", "3"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "psm: pass@1 1.0000" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["sha256"] == hashlib.sha256(codellama_gguf.read_bytes()).hexdigest()
    assert record["settings"]["modes"] == ["psm", "spm"]
    assert record["settings"]["engine"]["n_ctx"] == 512
    assert record["versions"]["llama_cpp_python"]
    assert "| psm | 1.0000 |" in (out / "run.md").read_text()
    assert not list(out.glob(".*"))


def test_cli_reports_a_missing_file_as_an_error(tmp_path, capsys):
    assert main(["eval", "fim", str(tmp_path / "none.jsonl"), "--no-progress"]) == 2
    assert "task file not found" in capsys.readouterr().err


def test_unknown_mode_is_a_config_error(tiny_engine, judge, add_problem):
    from llamacode.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown FIM mode"):
        evaluate_fim(tiny_engine, [add_problem], judge, FimExecConfig(modes=("pms",)), False)


def test_the_score_is_of_the_suggestion_shown_not_of_the_raw_output(tmp_path, cl_vocab, judge):
    from tests.fixtures.gguf_models import chain, write_tiny_gguf

    v = cl_vocab
    # " x + y" and then, as instruction-tuned models do, more code at the top level.
    middle = [v.id("▁x"), v.id("▁+"), v.id("▁y")]
    script = chain([*middle, v.id("<0x0A>"), v.id("def"), v.id("▁f"), v.id("▁(")])
    model = write_tiny_gguf(tmp_path / "chatty.gguf", v, script=script, default_next=middle[0])
    engine = Engine.load(model, EngineConfig(n_ctx=512, n_threads=1))
    add = FimProblem("chatty/add", "def add(x, y):\n    return", "\n", " x + y", ADD, "add")
    summary, details = evaluate_fim(engine, [add], judge, FimExecConfig(modes=("psm",)), False)
    assert details[0]["middle"] == " x + y" and details[0]["stop_reason"] == "dedent"
    raw = engine.infill(add.prompt, add.suffix, config=GenerationConfig(max_tokens=12)).text
    assert raw.startswith(" x + y\ndef f (")
    assert not judge_middle(judge, add, raw).passed  # the raw output does not even compile
    assert summary["modes"]["psm"]["pass@1"] == 1.0
