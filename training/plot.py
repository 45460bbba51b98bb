"""The loss curve as a PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SMOOTHING = 20


def _moving_mean(points: Sequence[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    values = [v for _, v in points]
    return [
        (points[i][0], sum(values[i + 1 - window : i + 1]) / window)
        for i in range(window - 1, len(points))
    ]


def plot_losses(
    train: Sequence[tuple[int, float]], val: Sequence[tuple[int, float]], path: Path, title: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if len(train) >= 4 * SMOOTHING:  # one example a step is noisy: show the trend over it
        ax.plot(*zip(*train, strict=True), label="train", linewidth=0.6, alpha=0.35)
        ax.plot(*zip(*_moving_mean(train, SMOOTHING), strict=True),
                label=f"train, mean of {SMOOTHING} steps", linewidth=1.5)  # fmt: skip
    elif train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
