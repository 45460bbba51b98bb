"""The settings of ``llamacode tune`` (torch-free, so the CLI can build its flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llamacode.runtime.dataclass_flags import option
from llamacode.runtime.fim import FimMode

DEFAULT_MINUTES = 20.0


@dataclass
class TuneConfig:
    """One tuning run. The defaults fit a useful run into 30 minutes on two CPU cores
    with the 0.5B model (bench/RESULTS.md, "Tuning on a repository")."""

    model: str | None = field(
        default=None,
        metadata=option(help="base GGUF (default: the model that answers while typing)"),
    )
    out: str | None = field(
        default=None,
        metadata=option(help="run directory (default: under the llamacode data directory)"),
    )
    minutes: float | None = field(
        default=None,
        metadata=option(
            minimum=0,
            help=f"stop training after this long (default: {DEFAULT_MINUTES:g} without --steps)",
        ),
    )
    steps: int = field(default=0, metadata=option(minimum=0, help="stop after N steps (0: none)"))
    rank: int = field(default=8, metadata=option(minimum=1, help="LoRA rank"))
    alpha: float = field(default=16.0, metadata=option(help="LoRA alpha (scale alpha/rank)"))
    seq_len: int = field(default=512, metadata=option(minimum=64, help="tokens per example"))
    layout: str = field(
        default="both",
        metadata=option(
            choices=("psm", "spm", "both"),
            help="FIM layouts taught; both: PSM and SPM in turn, which keeps the layout the "
            "model is served in from drifting (default: both)",
        ),
    )
    replay: float = field(
        default=0.0,
        metadata=option(
            minimum=0,
            help="share of examples cut from general code (the Python standard library) "
            "instead of the repository, against drift elsewhere; the default run holds the "
            "general set without it (bench/RESULTS.md) (default: 0)",
        ),
    )
    lr: float = field(default=2e-4, metadata=option(help="AdamW learning rate"))
    warmup: int = field(default=10, metadata=option(minimum=0, help="linear warmup steps"))
    lr_floor: float = field(
        default=0.1,
        metadata=option(
            minimum=0,
            help="learning rate at the end of the run as a share of --lr: after the warmup "
            "it decays along a cosine over --steps, or over --minutes (default: 0.1)",
        ),
    )
    batch: int = field(default=1, metadata=option(minimum=1, help="examples per step"))
    seed: int = 0
    threads: int = field(default=0, metadata=option(minimum=0, help="CPU threads (0: all)"))
    save_every: int = field(default=10, metadata=option(minimum=1, help="steps between saves"))
    val_every: int = field(
        default=50, metadata=option(minimum=1, help="steps between held-out loss measurements")
    )
    resume: bool = field(default=False, metadata=option(help="continue the run in --out"))
    progress: bool = True

    @property
    def modes(self) -> tuple[FimMode, ...]:
        """The layouts of the training examples, in the order they take turns."""
        if self.layout == "both":
            return (FimMode.PSM, FimMode.SPM)
        return (FimMode(self.layout),)

    @property
    def time_limit_s(self) -> float | None:
        """Seconds of training allowed, or None for a run bounded by --steps only."""
        if self.minutes is not None:
            return self.minutes * 60
        return None if self.steps else DEFAULT_MINUTES * 60
