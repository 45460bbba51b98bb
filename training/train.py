"""The training loop for every stage: pretraining / continued training, long-context
fine-tuning and instruction tuning.

One process or many under ``torchrun`` (DDP or FSDP2, gloo on CPU). The loss of a step
is the sum of token losses over the whole global batch divided by its number of target
tokens, whatever the split into ranks and micro-batches, so two ranks compute what one
process computes. Everything a step depends on (weights, AdamW state, the step number
that fixes the data and the learning rate, RNG states) is in the checkpoint: resuming
on CPU continues bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from llamacode.convert.checkpoint_format import CONFIG_FILE, FIM_ROLES, ModelConfig, read_config
from llamacode.runtime.errors import ConfigError
from llamacode.training import checkpoint as ckpt
from llamacode.training.batches import IGNORE_INDEX, PackedWindows, WindowOrder
from llamacode.training.chat import CHAT_TEMPLATE
from llamacode.training.config import Config
from llamacode.training.distributed import DistInfo, all_reduce_sum, barrier, setup, teardown, wrap
from llamacode.training.metrics import format_mfu, mfu, peak_flops
from llamacode.training.model import Transformer
from llamacode.training.optim import build_optimizer, learning_rate
from llamacode.training.prepare import prepare_chat, prepare_code
from llamacode.training.shards import DataError, TokenStore, read_index
from llamacode.training.sources import collect
from llamacode.training.tokenizer import Tokenizer, train_tokenizer


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    tokens_per_s: float = 0.0
    mfu: float | None = None
    n_params: int = 0


def train(config: Config) -> TrainResult:
    """Run ``config``'s stage to ``train.steps`` and leave a checkpoint in ``train.out_dir``."""
    config.validate()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    info = setup(config.train.device)
    try:
        return _Trainer(config, info).run()
    finally:
        teardown()


def _log(info: DistInfo, message: str) -> None:
    if info.is_main:
        tqdm.write(message, file=sys.stderr)


class _Trainer:
    def __init__(self, config: Config, info: DistInfo) -> None:
        self.config = config
        self.info = info
        self.t = config.train
        self.out_dir = Path(self.t.out_dir)

    # -- set-up ---------------------------------------------------------------------

    def _tokenizer(self) -> Path:
        if self.t.resume:
            return ckpt.tokenizer_path(self.out_dir)
        if self.t.init_from:
            return ckpt.tokenizer_path(self.t.init_from)
        path = Path(self.config.tokenizer.path)
        if not path.exists() and self.info.is_main:
            _log(
                self.info,
                f"training a tokenizer ({self.config.tokenizer.vocab_size} pieces) -> {path}",
            )
            if not self.config.data.sources:
                raise ConfigError(f"no tokenizer at {path} and no data.sources to train one from")
            texts = (d.text for d in collect(self.config.data.sources, self.config.data.languages))
            train_tokenizer(texts, path, self.config.tokenizer.vocab_size)
        barrier(self.info)
        return path

    def _data(self, tok: Tokenizer) -> Path:
        data_dir = Path(self.config.data.dir)
        if not (data_dir / "index.json").exists() and self.info.is_main:
            _log(self.info, f"preparing data -> {data_dir}")
            if self.t.stage == "instruct":
                prepare_chat(self.config.data, tok.path or "", data_dir)
            else:
                prepare_code(self.config.data, tok.path or "", data_dir)
        barrier(self.info)
        index = read_index(data_dir)
        if index["tokenizer_sha256"] != tok.sha256:
            raise DataError(
                f"{data_dir} was prepared with another tokenizer; "
                "prepare it again or point data.dir elsewhere"
            )
        if (index["kind"] == "chat") != (self.t.stage == "instruct"):
            raise DataError(f"{data_dir} holds {index['kind']} data, not data for {self.t.stage}")
        return data_dir

    def _model_config(self, tok: Tokenizer) -> tuple[ModelConfig, str | None, str | None]:
        """Model config, the checkpoint to load weights from, and the chat template."""
        if self.t.resume:
            source: str | None = str(self.out_dir)
        else:
            source = self.t.init_from or None
        if source is not None:
            saved = read_config(source)
            mc, template = saved.model, saved.chat_template
        else:
            mc = ModelConfig(**self.config.model.to_dict())
            mc.vocab_size = tok.vocab_size
            template = None
        if not self.t.resume:
            if self.t.rope_theta:
                mc.rope_theta = self.t.rope_theta
            mc.max_seq_len = max(mc.max_seq_len, self.t.seq_len)
            if self.t.stage == "instruct":
                template = CHAT_TEMPLATE
        if mc.vocab_size < tok.vocab_size:
            raise ConfigError(f"model vocabulary {mc.vocab_size} < tokenizer's {tok.vocab_size}")
        if self.t.seq_len > mc.max_seq_len:
            raise ConfigError(
                f"train.seq_len {self.t.seq_len} > model max_seq_len {mc.max_seq_len}"
            )
        return mc, source, template

    def _check_out_dir(self) -> None:
        has_state = (self.out_dir / ckpt.STATE_FILE).exists()
        if self.t.resume and not has_state:
            raise ConfigError(f"nothing to resume in {self.out_dir}: no {ckpt.STATE_FILE}")
        if not self.t.resume and (self.out_dir / CONFIG_FILE).exists():
            raise ConfigError(
                f"{self.out_dir} already holds a checkpoint: pass --resume to continue it "
                "or choose another train.out_dir"
            )

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> TrainResult:
        t, info = self.t, self.info
        self._check_out_dir()
        tok = Tokenizer.load(self._tokenizer())
        data_dir = self._data(tok)
        mc, source, self.template = self._model_config(tok)
        self.model_config = mc
        self.tok = tok

        torch.manual_seed(t.seed)
        random.seed(t.seed)
        model = Transformer(mc, activation_checkpointing=t.activation_checkpointing)
        if source is not None:
            model.load_state_dict(ckpt.load_model_weights(source), strict=True)
        model.to(info.device)
        flops_per_token = model.flops_per_token(t.seq_len)
        n_params = model.num_params()
        if t.compile:
            for layer in model.layers:
                layer.compile()
        self.model = wrap(model, info, t.parallel)
        self.optimizer = build_optimizer(
            self.model, self.config.optim, fused=info.device.type == "cuda"
        )

        self.global_batch = t.micro_batch_size * t.grad_accum * info.world_size
        start = 0
        self.train_losses: list[tuple[int, float]] = []
        self.val_losses: list[tuple[int, float]] = []
        self.tokens_seen = 0
        if t.resume:
            start = self._restore()

        train_windows = PackedWindows(TokenStore.open(data_dir, "train"), t.seq_len)
        val_windows = PackedWindows(TokenStore.open(data_dir, "val"), t.seq_len)
        order = WindowOrder(len(train_windows), t.seed)
        per_rank = t.micro_batch_size * t.grad_accum
        global_batch = self.global_batch
        step_tokens = global_batch * t.seq_len
        peak = peak_flops(info.device)
        _log(
            info,
            f"{t.stage}: {n_params / 1e6:.2f}M parameters, {info.world_size} rank(s) on "
            f"{info.device.type}, global batch {global_batch} x {t.seq_len} tokens, "
            f"{len(train_windows)} training sequences, steps {start}..{t.steps}",
        )
        if start == 0 and t.eval_every > 0:
            self.val_losses.append((0, self._evaluate(val_windows)))
            _log(info, f"step 0 val loss {self.val_losses[-1][1]:.4f}")

        bar = tqdm(
            total=t.steps,
            initial=start,
            desc=t.stage,
            unit="step",
            disable=not (info.is_main and t.progress),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        rates: list[float] = []
        window_start, window_tokens = time.perf_counter(), 0
        with bar:
            end = min(t.steps, t.stop_after) if t.stop_after else t.steps
            for step in range(start, end):
                lr = learning_rate(step, t.steps, self.config.optim)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                indices = order.batch(step, global_batch)
                mine = indices[info.rank * per_rank : (info.rank + 1) * per_rank]
                loss, grad_norm = self._step(train_windows, mine)
                if info.device.type == "cuda":
                    torch.cuda.synchronize(info.device)
                self.tokens_seen += step_tokens
                window_tokens += step_tokens
                done = step + 1
                self.train_losses.append((done, loss))
                bar.update()
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if done % t.log_every == 0 or done == end:
                    now = time.perf_counter()
                    rate = window_tokens / max(now - window_start, 1e-9)
                    if done > start + 1 or done == end:
                        rates.append(rate)
                    window_start, window_tokens = now, 0
                    _log(
                        info,
                        f"step {done}/{t.steps} loss {loss:.4f} lr {lr:.2e} grad-norm "
                        f"{grad_norm:.3f} tok/s {rate:,.0f} "
                        f"MFU {format_mfu(mfu(rate, flops_per_token, peak, info.world_size))}",
                    )
                if t.eval_every > 0 and (done % t.eval_every == 0 or done == end):
                    self.val_losses.append((done, self._evaluate(val_windows)))
                    _log(info, f"step {done} val loss {self.val_losses[-1][1]:.4f}")
                if done % t.save_every == 0 or done == end:
                    self._save(done)
        tokens_per_s = rates[-1] if rates else 0.0
        if len(rates) > 1:
            tokens_per_s = sum(rates[1:]) / len(rates[1:])
        if info.is_main and self.config.train.plot:
            from llamacode.training.plot import plot_losses

            plot = plot_losses(
                self.train_losses,
                self.val_losses,
                self.out_dir / "loss.png",
                f"{t.stage}: {n_params / 1e6:.2f}M parameters",
            )
            _log(info, f"loss plot: {plot}")
        return TrainResult(
            out_dir=self.out_dir,
            steps=t.steps,
            train_losses=self.train_losses,
            val_losses=self.val_losses,
            tokens_per_s=tokens_per_s,
            mfu=mfu(tokens_per_s, flops_per_token, peak, info.world_size),
            n_params=n_params,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.info.device.type == "cuda":
            return torch.autocast("cuda", dtype=getattr(torch, self.t.autocast_dtype))
        return contextlib.nullcontext()

    def _micro_batches(self, windows: PackedWindows, indices: Any) -> Iterator[Any]:
        """(inputs, targets) on the CPU, one micro-batch at a time."""
        size = self.t.micro_batch_size
        for i in range(0, len(indices), size):
            yield windows.get(indices[i : i + size])

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.info.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.info.device, non_blocking=True), y.to(self.info.device, non_blocking=True)

    def _loss_sum(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = self.model(x)
        return F.cross_entropy(
            logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )

    def _step(self, windows: PackedWindows, indices: Any) -> tuple[float, float]:
        info = self.info
        batches = list(self._micro_batches(windows, indices))
        local_count = sum(int((y != IGNORE_INDEX).sum()) for _, y in batches)
        (count,) = all_reduce_sum(info, [float(local_count)])
        count = max(count, 1.0)
        # Accumulated on the device: no host sync until the step is done.
        total_t = torch.zeros((), dtype=torch.float64, device=info.device)
        self.model.train()
        for i, (x, y) in enumerate(batches):
            last = i == len(batches) - 1
            with self._sync(last):
                loss_sum = self._loss_sum(*self._to_device(x, y))
                # DDP and FSDP average gradients over ranks; scale so the result is the
                # global sum over target tokens divided by the global count.
                (loss_sum * (info.world_size / count)).backward()
            total_t += loss_sum.detach().double()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        (total,) = all_reduce_sum(info, [float(total_t)])
        return total / count, float(grad_norm)

    def _sync(self, last: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on all but the last micro-batch."""
        if hasattr(self.model, "no_sync") and not last:
            return self.model.no_sync()
        if hasattr(self.model, "set_requires_gradient_sync"):
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _evaluate(self, windows: PackedWindows) -> float:
        info, t = self.info, self.t
        # Every rank runs the same number of forwards (FSDP gathers are collective).
        wanted = min(len(windows), t.eval_batches * t.micro_batch_size * info.world_size)
        k = max(info.world_size, wanted // info.world_size * info.world_size)
        indices = [i % len(windows) for i in range(info.rank, k, info.world_size)]
        self.model.eval()
        total_t = torch.zeros((), dtype=torch.float64, device=info.device)
        count = 0.0
        for x, y in self._micro_batches(windows, indices):
            count += int((y != IGNORE_INDEX).sum())
            total_t += self._loss_sum(*self._to_device(x, y)).double()
        total, count = all_reduce_sum(info, [float(total_t), count])
        return total / max(count, 1.0)

    # -- checkpoints ----------------------------------------------------------------------

    def _save(self, step: int) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state, optim_state = get_state_dict(self.model, self.optimizer, options=options)
        if self.info.is_main:
            tensors, groups = ckpt.optimizer_to_tensors(optim_state)
            rng = {"torch": torch.get_rng_state().tolist(), "python": _python_rng()}
            if self.info.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.info.device).tolist()
            trainer_state = {
                "step": step,
                "tokens_seen": self.tokens_seen,
                "samples_seen": step * self.global_batch,
                "global_batch": self.global_batch,
                "world_size": self.info.world_size,
                "rng": rng,
                "param_groups": groups,
                "train_losses": self.train_losses,
                "val_losses": self.val_losses,
                "config": self.config.to_dict(),
            }
            training = {
                "stage": self.t.stage,
                "step": step,
                "tokens_seen": self.tokens_seen,
                "seq_len": self.t.seq_len,
                "init_from": self.t.init_from or None,
                "data": self.config.data.dir,
            }
            fim = None
            if self.tok.fim_ids is not None:
                fim = dict(zip(FIM_ROLES, self.tok.fim_ids, strict=True))
            assert self.tok.path is not None
            ckpt.save_checkpoint(
                self.out_dir,
                model_config=self.model_config,
                model_state=model_state,
                tokenizer_file=self.tok.path,
                fim=fim,
                chat_template=self.template,
                training=training,
                optimizer_tensors=tensors,
                trainer_state=trainer_state,
            )
        barrier(self.info)

    def _restore(self) -> int:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        state, tensors = ckpt.load_trainer_state(self.out_dir)
        if state["global_batch"] != self.global_batch:
            raise ConfigError(
                f"the run was started with a global batch of {state['global_batch']} sequences; "
                f"resume with the same (now {self.global_batch})"
            )
        optim_state = ckpt.optimizer_from_tensors(tensors, state["param_groups"])
        set_optimizer_state_dict(
            self.model,
            self.optimizer,
            optim_state,
            options=StateDictOptions(full_state_dict=True),
        )
        torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
        version, internal, gauss = state["rng"]["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state["rng"] and self.info.device.type == "cuda":
            torch.cuda.set_rng_state(
                torch.tensor(state["rng"]["cuda"], dtype=torch.uint8), self.info.device
            )
        self.train_losses = [tuple(x) for x in state["train_losses"]]  # type: ignore[misc]
        self.val_losses = [tuple(x) for x in state["val_losses"]]  # type: ignore[misc]
        self.tokens_seen = state["tokens_seen"]
        _log(self.info, f"resumed {self.out_dir} at step {state['step']}")
        return int(state["step"])


def _python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [
        version,
        list(internal),
        gauss if not isinstance(gauss, float) or math.isfinite(gauss) else None,
    ]
