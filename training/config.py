"""Training configuration: TOML files mirror these dataclasses; every field has a default.

``llamacode train CONFIG.toml --set train.steps=100`` overrides any field from the
command line (the value is read as TOML, falling back to a plain string).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamacode.convert.checkpoint_format import ModelConfig
from llamacode.runtime.errors import ConfigError
from llamacode.training.prepare import DataConfig

STAGES = ("pretrain", "lcft", "instruct")
PARALLEL = ("ddp", "fsdp")


@dataclass
class TokenizerConfig:
    """The tokenizer file; trained from ``data.sources`` when it does not exist yet."""

    path: str = "out/tokenizer.model"
    vocab_size: int = 32000


@dataclass
class OptimConfig:
    """AdamW and the cosine schedule (Llama 2 / Code Llama values)."""

    lr: float = 3e-4
    final_lr_ratio: float = 1 / 30
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    """The run: stage, batch geometry, schedule length, checkpoints and logging.

    The global batch is ``micro_batch_size * grad_accum * world_size`` sequences of
    ``seq_len`` tokens. ``init_from`` names a checkpoint to start from (continued
    training, long-context fine-tuning, instruction tuning); its model config and
    tokenizer are used, with ``rope_theta`` (when non-zero) and ``seq_len`` applied.
    ``threads`` sets torch's CPU threads (0: torch's default; 1 is fastest for tiny
    models on a busy machine). ``stop_after`` (when non-zero) ends the run after that step of the ``steps``-long
    schedule with a checkpoint, for jobs with a time limit; ``--resume`` continues it.
    """

    stage: str = "pretrain"
    out_dir: str = "out/run"
    init_from: str = ""
    resume: bool = False
    steps: int = 1000
    stop_after: int = 0
    micro_batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 256
    rope_theta: float = 0.0
    eval_every: int = 100
    eval_batches: int = 8
    save_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    autocast_dtype: str = "bfloat16"
    compile: bool = False
    activation_checkpointing: bool = False
    parallel: str = "ddp"
    progress: bool = True
    plot: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        t = self.train
        if t.stage not in STAGES:
            raise ConfigError(f"train.stage must be one of {', '.join(STAGES)}, not {t.stage!r}")
        if t.parallel not in PARALLEL:
            raise ConfigError(f"train.parallel must be one of {', '.join(PARALLEL)}")
        if t.stage in ("lcft", "instruct") and not t.init_from:
            raise ConfigError(f"the {t.stage} stage starts from a checkpoint: set train.init_from")
        if t.stage == "instruct" and not self.data.chat:
            raise ConfigError("instruction tuning needs chat JSONL files: set data.chat")
        for name in ("steps", "micro_batch_size", "grad_accum", "seq_len", "eval_batches"):
            if getattr(t, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1")
        if t.autocast_dtype not in ("bfloat16", "float16"):
            raise ConfigError("train.autocast_dtype must be bfloat16 or float16")
        if self.optim.warmup_steps < 0 or not 0 < self.optim.final_lr_ratio <= 1:
            raise ConfigError("optim.warmup_steps >= 0 and 0 < optim.final_lr_ratio <= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown keys in [{where}]: {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, hint, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        return [_coerce(v, typing.get_args(hint)[0], where) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and type(value) is not hint:
        raise ConfigError(f"{where} must be {hint.__name__}, not {value!r}")
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    config = _build(Config, data, "")
    config.validate()
    return config


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:  # type: ignore[assignment]
    """Read a TOML config (or defaults when ``path`` is None) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} is not SECTION.KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        section, _, name = key.strip().partition(".")
        data.setdefault(section, {})[name] = value
    return config_from_dict(data)
