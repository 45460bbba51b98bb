"""The training loop: learning, exact resume, distributed equivalence, later stages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llamacode.convert.checkpoint_format import MODEL_FILE, TOKENIZER_FILES, read_config
from llamacode.runtime.errors import ConfigError
from llamacode.runtime.template import LLAMA2_TEMPLATE
from llamacode.training.config import config_from_dict
from llamacode.training.model import Transformer
from llamacode.training.train import train

from .conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, tokenizer_path: Path, data_dir: Path, **train_fields: object):
    return config_from_dict(tiny_overrides(tmp, tokenizer_path, data_dir, **train_fields))


@pytest.mark.slow
def test_tiny_model_validation_loss_falls(
    tmp_path: Path, tokenizer_path: Path, data_dir: Path
) -> None:
    config = _config(
        tmp_path, tokenizer_path, data_dir, steps=60, eval_every=20, micro_batch_size=8, plot=True
    )
    result = train(config)
    start, end = result.val_losses[0][1], result.val_losses[-1][1]
    assert start > 6.0  # ln(512) = 6.24: an untrained model
    assert end < start - 1.5
    assert (result.out_dir / "loss.png").stat().st_size > 1000
    saved = read_config(result.out_dir)
    assert saved.model.vocab_size == 512 and saved.tokenizer.fim["pre"] == 3
    names = set(load_file(result.out_dir / MODEL_FILE))
    assert {"tok_embeddings.weight", "layers.1.feed_forward.w3.weight", "output.weight"} <= names


def test_resume_reproduces_the_uninterrupted_loss_curve(
    tmp_path: Path, tokenizer_path: Path, data_dir: Path
) -> None:
    full = train(_config(tmp_path / "a", tokenizer_path, data_dir, steps=8, grad_accum=2))
    _config_b = tiny_overrides(tmp_path / "b", tokenizer_path, data_dir, steps=8, grad_accum=2)
    first = train(config_from_dict({**_config_b, "train": {**_config_b["train"], "stop_after": 4}}))
    assert [s for s, _ in first.train_losses] == [1, 2, 3, 4]
    state = json.loads((first.out_dir / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["rng"]["torch"]
    resumed = train(
        config_from_dict({**_config_b, "train": {**_config_b["train"], "resume": True}})
    )
    assert resumed.train_losses == full.train_losses  # bit for bit, steps 1..8
    # The interrupted run also evaluated where it stopped (step 4); the rest agree exactly.
    assert [v for v in resumed.val_losses if v[0] != 4] == full.val_losses
    a = load_file(full.out_dir / MODEL_FILE)
    b = load_file(resumed.out_dir / MODEL_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_checkpoint_is_not_overwritten_without_resume(
    tmp_path: Path, tokenizer_path: Path, base_checkpoint: Path, data_dir: Path
) -> None:
    config = _config(tmp_path, tokenizer_path, data_dir, out_dir=str(base_checkpoint))
    with pytest.raises(ConfigError, match="--resume"):
        train(config)


def test_lcft_raises_rope_base_and_runs_at_the_longer_length(
    tmp_path: Path, tokenizer_path: Path, data_dir: Path, base_checkpoint: Path
) -> None:
    before = read_config(base_checkpoint).model
    assert before.rope_theta == 10000.0
    config = _config(
        tmp_path,
        tokenizer_path,
        data_dir,
        stage="lcft",
        init_from=str(base_checkpoint),
        rope_theta=1e6,
        seq_len=512,
        micro_batch_size=1,
        steps=2,
    )
    result = train(config)
    saved = read_config(result.out_dir)
    assert saved.model.rope_theta == 1e6 and saved.model.max_seq_len >= 512
    assert saved.training["stage"] == "lcft"
    model = Transformer(saved.model)
    model.load_state_dict(load_file(result.out_dir / MODEL_FILE))
    with torch.no_grad():
        logits = model(torch.randint(0, 512, (1, 512)))
    assert logits.shape == (1, 512, 512) and bool(torch.isfinite(logits).all())


def test_instruction_tuning_trains_on_answers_and_saves_the_chat_template(
    tmp_path: Path, tokenizer_path: Path, base_checkpoint: Path
) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Answer with code."},
                        {"role": "user", "content": f"Write f{i}."},
                        {"role": "assistant", "content": f"def f{i}():\n    return {i}"},
                    ]
                }
            )
            + "\n"
            for i in range(30)
        )
    )
    overrides = tiny_overrides(
        tmp_path,
        tokenizer_path,
        tmp_path / "chat-data",
        stage="instruct",
        init_from=str(base_checkpoint),
        steps=3,
        seq_len=32,
    )
    overrides["data"]["chat"] = [str(chat)]
    result = train(config_from_dict(overrides))
    saved = read_config(result.out_dir)
    assert saved.chat_template == LLAMA2_TEMPLATE and saved.training["stage"] == "instruct"
    assert all(loss == loss for _, loss in result.train_losses)  # finite, i.e. targets existed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(config_path: Path, nproc: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(nproc),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            "-m",
            "llamacode.training.cli",
            "train",
            str(config_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _toml(overrides: dict) -> str:
    lines = []
    for section, values in overrides.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_gloo_ranks_match_one_process(
    tmp_path: Path, tokenizer_path: Path, data_dir: Path, parallel: str
) -> None:
    single = train(
        _config(
            tmp_path / "one", tokenizer_path, data_dir, steps=4, micro_batch_size=2, grad_accum=2
        )
    )
    overrides = tiny_overrides(
        tmp_path / "two",
        tokenizer_path,
        data_dir,
        steps=4,
        micro_batch_size=2,
        grad_accum=1,
        parallel=parallel,
    )
    config_path = tmp_path / "two.toml"
    config_path.write_text(_toml(overrides))
    proc = _torchrun(config_path, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "two" / "run" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["global_batch"] == 4
    two = [loss for _, loss in state["train_losses"]]
    one = [loss for _, loss in single.train_losses]
    assert two == pytest.approx(one, rel=1e-5, abs=1e-6)
    a = load_file(single.out_dir / MODEL_FILE)
    b = load_file(tmp_path / "two" / "run" / MODEL_FILE)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_continued_training_from_an_imported_gguf_keeps_its_tokenizer(
    tmp_path: Path, base_checkpoint: Path, data_dir: Path, tokenizer
) -> None:
    """The Code Llama path: an existing GGUF -> checkpoint -> continued training."""
    from llamacode.convert.export_gguf import export_gguf
    from llamacode.convert.import_gguf import import_gguf
    from llamacode.training.tokenizer import Tokenizer

    gguf = tmp_path / "base.gguf"
    export_gguf(base_checkpoint, gguf, out_type="f32", progress=False)
    imported = tmp_path / "imported"
    import_gguf(gguf, imported, progress=False)
    assert read_config(imported).tokenizer.type == "gguf"
    reused = Tokenizer.load(imported / TOKENIZER_FILES["gguf"])
    text = (Path(__file__).read_text() + " ☺ 123")[:3000]
    assert reused.encode(text) == tokenizer.encode(text)
    assert reused.encode_nospace(text) == tokenizer.encode_nospace(text)
    assert reused.fim_ids == tokenizer.fim_ids
    config = _config(tmp_path, Path("unused"), data_dir, init_from=str(imported), steps=2)
    result = train(config)
    saved = read_config(result.out_dir)
    assert saved.tokenizer.type == "gguf" and (result.out_dir / saved.tokenizer.file).exists()
    # It starts from the imported weights: the same validation loss the base model ended on.
    base_state = json.loads((base_checkpoint / "trainer_state.json").read_text())
    assert result.val_losses[0][1] == pytest.approx(base_state["val_losses"][-1][1], abs=1e-5)
