"""Every `llamacode eval` verb end to end on tiny real models: outputs written, no leftovers."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

from llamacode.runtime.cli import main
from tests.evaluation.conftest import EVALS

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _run(argv: list[str]) -> int:
    """Run an evaluation verb quietly (no progress bars)."""
    return main([*argv, "--no-progress"])


def test_build_fim_tasks_writes_the_requested_number(tmp_path, capsys):
    out = tmp_path / "tasks.jsonl"
    code = main(
        ["eval", "build-fim-tasks", str(STDLIB / "json"), "-o", str(out), "--max-tasks", "5"]
    )
    assert code == 0
    assert len(out.read_text().splitlines()) == 5
    assert "wrote 5 tasks" in capsys.readouterr().out


def test_fim_match_on_the_shipped_set(codellama_gguf, tmp_path, capsys):
    code = _run(["eval", "fim-match", str(EVALS / "fim_stdlib_python.jsonl.gz"),
                 "-m", str(codellama_gguf), "--ctx", "1024", "--limit", "3", "--modes", "spm",
                 "--out", str(tmp_path), "--name", "m"])  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["summary"]["tasks"] == 3
    assert {g["mode"] for g in record["summary"]["groups"]} == {"spm"}
    assert "| spm | python |" in capsys.readouterr().out


def test_complete_reports_pass_at_1(codellama_gguf, tmp_path, capsys):
    code = _run(["eval", "complete", str(EVALS / "complete_smoke.jsonl"), "-m", str(codellama_gguf),
                 "--ctx", "512", "--timeout", "3", "--out", str(tmp_path), "--name", "c"])  # fmt: skip
    assert code == 0
    assert "pass@1 0.0000 (3 problems)" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["summary"]["problems"] == 3


def test_key_retrieval_writes_table_and_plot(codellama_gguf, tmp_path):
    code = _run(["eval", "key-retrieval", "-m", str(codellama_gguf), "--ctx", "512",
                 "--filler", str(STDLIB / "bisect.py"), "--lengths", "300", "--trials", "1",
                 "--out", str(tmp_path), "--name", "k"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 300 |" in (tmp_path / "k.md").read_text()


def test_perplexity_writes_table_and_plot(codellama_gguf, tmp_path):
    code = _run(["eval", "perplexity", str(STDLIB / "bisect.py"), "-m", str(codellama_gguf),
                 "--max-length", "256", "--out", str(tmp_path), "--name", "p"])  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "p.json").read_text())
    assert record["summary"]["files"] == 1
    assert record["model"]["sha256"]
    assert (tmp_path / "p.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "p.md", "p.png"]
