"""Model resolution and the `llamacode` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.errors import ModelNotFoundError
from runtime.models import available_models, resolve_model

LLAMACODE = [sys.executable, "-m", "runtime"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLAMACODE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_resolution_order_is_flag_env_models_dir_default(
    tmp_path: Path, monkeypatch, default_model
):
    models = tmp_path / "models"
    models.mkdir()
    placed = models / "placed.gguf"
    shutil.copy(default_model, placed)
    monkeypatch.setenv("LLAMACODE_MODELS_DIR", str(models))
    monkeypatch.delenv("LLAMACODE_MODEL", raising=False)
    assert resolve_model().path == placed
    monkeypatch.setenv("LLAMACODE_MODEL", str(default_model))
    assert resolve_model().source == "$LLAMACODE_MODEL"
    assert resolve_model(str(placed)).source == "flag"
    sources = [m.source.split(" ")[0] for m in available_models(str(placed))]
    assert sources == ["flag", "$LLAMACODE_MODEL", "models", "default", "packaged"]


def test_explicit_model_that_does_not_exist_never_falls_through(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LLAMACODE_MODEL", str(tmp_path / "gone.gguf"))
    with pytest.raises(ModelNotFoundError, match=r"gone\.gguf"):
        resolve_model()


def test_info_shows_codellama_fim_tokens(codellama_gguf: Path):
    out = run_cli("info", str(codellama_gguf))
    assert out.returncode == 0, out.stderr
    assert "codellama: pre 32007, suf 32008, mid 32009, eot 32010" in out.stdout
    assert "rope freq base         1e+06" in out.stdout
    data = json.loads(run_cli("info", str(codellama_gguf), "--json").stdout)
    assert data["fim"]["family"] == "codellama" and data["fim_mode"] == "spm"
    assert data["vocab_size"] == 32016


def test_models_lists_the_default_with_its_source(default_model: Path):
    out = run_cli("models", "--json", env={"LLAMACODE_MODELS_DIR": "/nonexistent"})
    rows = json.loads(out.stdout)
    default = [r for r in rows if r["source"].startswith("default")]
    assert default and default[0]["path"] == str(default_model)


def test_complete_at_file_line_col_prints_code(tmp_path: Path, default_model: Path):
    source = tmp_path / "fib.py"
    doc = '    """Return True when n is even."""'
    source.write_text(f"def is_even(n: int) -> bool:\n{doc}\n\n\nprint(is_even(4))\n")
    out = run_cli(
        "complete", f"{source}:2:{len(doc) + 1}", "--model", str(default_model), "-n", "48"
    )
    assert out.returncode == 0, out.stderr
    assert "return" in out.stdout
    assert "prefix-only" in out.stderr  # diagnostics go to stderr


def test_infill_through_the_cli_uses_fim(codellama_gguf: Path):
    out = run_cli(
        "infill", "--model", str(codellama_gguf), "--prefix", "def f(x, y):\n   ", "--suffix", "\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == " return x + y\n"
    assert "[spm: eot" in out.stderr


def test_chat_one_shot_answers(default_model: Path):
    out = run_cli(
        "chat",
        "--model",
        str(default_model),
        "-p",
        "What is 2 + 2? Answer with a number.",
        "-n",
        "32",
    )
    assert out.returncode == 0, out.stderr
    assert "4" in out.stdout


def test_cli_errors_are_one_clear_line(tmp_path: Path):
    out = run_cli("complete", "nowhere.py:1:1", "--model", str(tmp_path / "missing.gguf"))
    assert out.returncode == 2
    assert out.stderr.startswith("error: ")
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    out = run_cli("info", str(bad))
    assert out.returncode == 2 and "not a GGUF" in out.stderr
    assert "Traceback" not in out.stderr


def test_complete_rejects_positions_outside_the_file(tmp_path: Path, default_model: Path):
    source = tmp_path / "a.py"
    source.write_text("x = 1\n")
    out = run_cli("complete", f"{source}:9:1", "--model", str(default_model))
    assert out.returncode == 2 and "past the end" in out.stderr


def test_load_plan_offloads_everything_and_quantizes_long_kv_on_a_gpu_build(codellama_gguf: Path):
    from runtime.config import EngineConfig
    from runtime.loader import plan_load
    from runtime.model_facts import read_facts

    facts = read_facts(codellama_gguf)
    gpu = plan_load(facts, EngineConfig(n_ctx=32768), gpu=True)
    assert (gpu.n_gpu_layers, gpu.flash_attn, gpu.type_k, gpu.type_v) == (-1, True, "q8_0", "q8_0")
    short = plan_load(facts, EngineConfig(n_ctx=4096), gpu=True)
    assert (short.type_k, short.type_v) == ("f16", "f16")
    cpu = plan_load(facts, EngineConfig(), gpu=False)
    assert (cpu.n_gpu_layers, cpu.flash_attn, cpu.n_ctx) == (0, False, 4096)
    assert any("CPU only" in reason for reason in cpu.reasons)
    chosen = plan_load(
        facts, EngineConfig(n_gpu_layers=3, type_k="q4_0", flash_attn=True), gpu=True
    )
    assert (chosen.n_gpu_layers, chosen.type_k, chosen.type_v) == (3, "q4_0", "f16")


def test_info_explains_the_default_settings(codellama_gguf: Path):
    out = run_cli("info", str(codellama_gguf))
    assert "default settings" in out.stdout and "ctx 4096" in out.stdout
    assert "why" in out.stdout
