"""``llamacode tune``: a FIM LoRA adapter for a GGUF model, trained on a user's repository.

The base model's weights are dequantized into the PyTorch Transformer and frozen; LoRA
adapts the attention and MLP projections on FIM examples cut from the repository's files
(training.repo_fim), laid out by the same function the engine builds prompts with. The
result is a GGUF LoRA adapter that llama.cpp applies on top of the unchanged model file.

A run lives in one directory: ``adapter.gguf``, ``run.json`` (what was trained on, the
held-out files, the cost), ``loss.png`` and the resumable state (``state/``). Examples are
numbered and drawn from the seed and their number, the optimizer state and the step are
saved, so ``--resume`` continues exactly where an interrupted run stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from llamacode.convert.atomic import atomic_file
from llamacode.convert.lora_gguf import write_lora_gguf
from llamacode.runtime.errors import LlamacodeError
from llamacode.runtime.model_facts import read_facts
from llamacode.runtime.models import Role, data_dir, resolve_model
from llamacode.training.bpe import ByteLevelBPE
from llamacode.training.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from llamacode.training.lora import LoraConfig, add_lora, gguf_pairs, load_lora_state, lora_state
from llamacode.training.plot import plot_losses
from llamacode.training.pretrained import load_pretrained
from llamacode.training.replay import MixedSource, ReplayCorpus, standard_library
from llamacode.training.repo_data import RepoSplit, split_repository
from llamacode.training.repo_fim import ExampleConfig, ExampleSource
from llamacode.training.tune_config import TuneConfig

ADAPTER_FILE = "adapter.gguf"
RUN_FILE = "run.json"
PLOT_FILE = "loss.png"
STATE_DIR = "state"
VALIDATION_EXAMPLES = 8


class TuneError(LlamacodeError):
    """A tuning run that cannot start or continue."""


@dataclass
class TuneResult:
    out: Path
    adapter: Path
    steps: int
    train_tokens: int
    seconds: float
    cpu_seconds_per_step: float
    tokens_per_s: float
    adapter_bytes: int
    val_loss: list[tuple[int, float]]


def default_run_dir(repo: Path, model: Path) -> Path:
    """``<data dir>/adapters/<repo>-<model>-<hash of both paths>``."""
    digest = hashlib.sha256(f"{repo.resolve()}\0{model.resolve()}".encode()).hexdigest()[:8]
    return data_dir() / "adapters" / f"{repo.resolve().name}-{model.stem}-{digest}"


def tune(repo: str | Path, config: TuneConfig) -> TuneResult:
    """Train (or continue) a LoRA adapter for ``config.model`` on ``repo``."""
    started = time.monotonic()
    repo = Path(repo)
    if not 0 <= config.lr_floor <= 1:
        raise TuneError(f"--lr-floor is a share of --lr, from 0 to 1, not {config.lr_floor}")
    if not 0 <= config.replay < 1:
        raise TuneError(
            f"--replay is a share of the examples, at least 0 and below 1, not {config.replay}"
        )
    split = split_repository(repo)
    model_path = resolve_model(config.model, Role.TYPING).path
    out = Path(config.out) if config.out else default_run_dir(repo, model_path)
    state_dir = out / STATE_DIR
    if out.exists() and not out.is_dir():
        raise TuneError(f"{out} is a file: --out names the directory a tuning run goes into")
    if out.exists() and any(out.iterdir()) and not config.resume:
        raise TuneError(
            f"{out} already holds a tuning run: pass --resume to continue it, "
            "or --out a new directory"
        )
    if config.resume and not (state_dir / "state.json").exists():
        raise TuneError(f"{out} holds no tuning run to resume; leave out --resume to start one")
    facts = read_facts(model_path)
    if facts.fim is None or facts.fim.eot is None:
        raise TuneError(f"{facts.name} has no FIM tokens: tuning teaches infilling in its layout")
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)

    tokenizer = ByteLevelBPE.from_gguf(model_path)
    cut = ExampleConfig(seq_len=config.seq_len, modes=config.modes)
    examples = ExampleSource(split.train, tokenizer.encode, facts.fim, cut, config.seed)
    held = ExampleSource(
        split.held_out or split.train, tokenizer.encode, facts.fim, cut, config.seed + 1
    )
    corpus = standard_library(exclude=split.root) if config.replay else None
    if corpus is not None and not corpus.files:
        raise TuneError(
            f"no general code to replay: {corpus.root} holds no Python sources; "
            "pass --replay 0 to tune on the repository alone"
        )
    general = (
        ExampleSource(corpus.files, tokenizer.encode, facts.fim, cut, config.seed + 2)
        if corpus is not None
        else None
    )
    mixture = MixedSource(examples, general, config.replay)
    validation = [held.example(i) for i in range(VALIDATION_EXAMPLES)]
    model = load_pretrained(model_path, max_seq_len=config.seq_len)
    lora = LoraConfig(config.rank, config.alpha)
    wrapped = add_lora(model, lora)
    params = [p for m in wrapped.values() for p in (m.lora_a, m.lora_b)]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    state = _RunState()
    if config.resume:
        state = _load_state(state_dir, wrapped, optimizer, config)
    else:
        out.mkdir(parents=True, exist_ok=True)
        state.val_loss.append((0, _validation_loss(model, validation)))

    limit = config.time_limit_s
    deadline = started + limit if limit is not None else math.inf
    model.train()
    bar = tqdm(
        total=config.steps or None,
        initial=state.step,
        desc="tune",
        unit="step",
        disable=not config.progress,
    )
    cpu_start = time.process_time()
    wall_start = time.monotonic()
    steps_here = 0
    tokens_here = 0
    try:
        while (not config.steps or state.step < config.steps) and time.monotonic() < deadline:
            done = state.step / config.steps if config.steps else 0.0
            if limit is not None:
                done = max(done, (time.monotonic() - started) / limit)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, state.step, done)
            loss, tokens = _step(model, mixture, state.step, config.batch)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.tokens += tokens
            state.losses.append((state.step, loss))
            steps_here += 1
            tokens_here += tokens
            bar.update(1)
            elapsed = time.monotonic() - wall_start
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_here / elapsed:.0f}")
            if state.step % config.val_every == 0:
                paused = time.monotonic(), time.process_time()
                state.val_loss.append((state.step, _validation_loss(model, validation)))
                wall_start += time.monotonic() - paused[0]  # steps only in the cost figures
                cpu_start += time.process_time() - paused[1]
            if state.step % config.save_every == 0:
                _save_state(state_dir, wrapped, optimizer, state, config)
    finally:
        bar.close()
    wall = time.monotonic() - wall_start
    cpu = time.process_time() - cpu_start
    if state.val_loss[-1][0] != state.step:
        state.val_loss.append((state.step, _validation_loss(model, validation)))
    state.seconds += wall
    _save_state(state_dir, wrapped, optimizer, state, config)

    adapter = out / ADAPTER_FILE
    with atomic_file(adapter) as tmp:
        tmp.unlink(missing_ok=True)
        write_lora_gguf(
            tmp,
            architecture=facts.architecture,
            alpha=lora.alpha,
            pairs=gguf_pairs(wrapped),
            base_model=facts.name,
            name=f"{split.root.name} FIM LoRA",
        )
    plot_losses(state.losses, state.val_loss, out / PLOT_FILE, f"LoRA on {split.root.name}")
    result = TuneResult(
        out=out,
        adapter=adapter,
        steps=state.step,
        train_tokens=state.tokens,
        seconds=state.seconds,
        cpu_seconds_per_step=cpu / steps_here if steps_here else 0.0,
        tokens_per_s=tokens_here / wall if wall else 0.0,
        adapter_bytes=adapter.stat().st_size,
        val_loss=state.val_loss,
    )
    _write_run(out, model_path, split, corpus, config, result)
    return result


def learning_rate(config: TuneConfig, step: int, done: float) -> float:
    """The rate for ``step`` when a share ``done`` of the run is over: a linear warmup,
    then a cosine from ``lr`` down to ``lr_floor * lr`` at the end (Code Llama's
    schedule). A constant rate left batch-1 runs' held-out loss swinging to the end."""
    warm = min(1.0, (step + 1) / max(1, config.warmup))
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return config.lr * warm * (config.lr_floor + (1 - config.lr_floor) * cosine)


def _step(
    model: torch.nn.Module, examples: MixedSource, step: int, batch: int
) -> tuple[float, int]:
    """One optimizer step's gradients (``batch`` examples, one at a time); mean loss."""
    total = 0.0
    tokens = 0
    for j in range(batch):
        example = examples.example(step * batch + j)
        loss = _example_loss(model, example.ids, example.target_start) / batch
        loss.backward()
        total += loss.item()
        tokens += len(example.ids)
    return total, tokens


def _example_loss(model: Any, ids: tuple[int, ...], target_start: int) -> torch.Tensor:
    """Mean cross-entropy of the middle and its end token given everything before them.

    Logits are computed only where a target is predicted: the output projection over a
    150k vocabulary is a large part of the cost.
    """
    tokens = torch.tensor([ids[:-1]])
    hidden = model.hidden_states(tokens)[0, target_start - 1 :]
    targets = torch.tensor(ids[target_start:])
    return F.cross_entropy(model.project(hidden).float(), targets)


def _validation_loss(model: Any, examples: list) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [_example_loss(model, e.ids, e.target_start).item() for e in examples]
    model.train(was_training)
    return sum(losses) / len(losses)


@dataclass
class _RunState:
    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)


# The settings a resumed run must share with the run it continues.
_RESUME_KEYS = (
    "rank", "alpha", "seq_len", "layout", "replay", "lr", "warmup", "lr_floor", "batch",
    "seed",
)  # fmt: skip


def _save_state(
    state_dir: Path, wrapped: dict, optimizer: torch.optim.Optimizer, state: _RunState, config
) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tensors, groups = optimizer_to_tensors(optimizer.state_dict())
    with atomic_file(state_dir / "lora.safetensors") as tmp:
        save_file(lora_state(wrapped), tmp)
    with atomic_file(state_dir / "optimizer.safetensors") as tmp:
        save_file({**tensors, "torch_rng": torch.get_rng_state()}, tmp)
    settings = {k: getattr(config, k) for k in _RESUME_KEYS}
    record = {**asdict(state), "groups": groups, "settings": settings}
    with atomic_file(state_dir / "state.json") as tmp:
        tmp.write_text(json.dumps(record) + "\n")


def _load_state(
    state_dir: Path, wrapped: dict, optimizer: torch.optim.Optimizer, config
) -> _RunState:
    record = json.loads((state_dir / "state.json").read_text())
    settings = {k: getattr(config, k) for k in _RESUME_KEYS}
    before = record["settings"]
    changed = ", ".join(
        f"{k}={before.get(k)}" for k in _RESUME_KEYS if before.get(k) != settings[k]
    )
    if changed:
        raise TuneError(
            f"the run in {state_dir.parent} was started with other settings ({changed}); "
            "resume with the same ones"
        )
    load_lora_state(wrapped, load_file(state_dir / "lora.safetensors"))
    tensors = load_file(state_dir / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("torch_rng"))
    saved = optimizer_from_tensors(tensors, record["groups"])
    # A plain optimizer numbers its parameters; the flat names carry them as text.
    saved["state"] = {int(k): v for k, v in saved["state"].items()}
    optimizer.load_state_dict(saved)
    return _RunState(
        step=record["step"],
        tokens=record["tokens"],
        seconds=record["seconds"],
        losses=[tuple(x) for x in record["losses"]],
        val_loss=[tuple(x) for x in record["val_loss"]],
    )


def _write_run(
    out: Path,
    model: Path,
    split: RepoSplit,
    corpus: ReplayCorpus | None,
    config: TuneConfig,
    result: TuneResult,
) -> None:
    record = {
        "repository": str(split.root),
        "replay": {"root": str(corpus.root), "files": len(corpus.files)} if corpus else None,
        "model": str(model),
        "settings": {k: v for k, v in asdict(config).items() if k not in ("out", "progress")},
        "train_files": [f.path for f in split.train],
        "held_out_files": [f.path for f in split.held_out],
        "skipped": split.skipped,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "seconds": round(result.seconds, 1),
        "cpu_seconds_per_step": round(result.cpu_seconds_per_step, 2),
        "tokens_per_s": round(result.tokens_per_s, 1),
        "adapter": str(result.adapter),
        "adapter_bytes": result.adapter_bytes,
        "validation_loss": result.val_loss,
    }
    with atomic_file(out / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
