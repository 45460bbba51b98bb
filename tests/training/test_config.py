"""TOML configs map onto the dataclasses; the shipped configs are valid."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from llamacode.runtime.errors import ConfigError
from llamacode.training.config import Config, load_config
from llamacode.training.optim import learning_rate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, Config) and config.train.steps > 0


def test_defaults_work_and_overrides_apply() -> None:
    config = load_config(None, ["train.steps=7", "optim.lr=1e-3", "train.out_dir=some/where"])
    assert (config.train.steps, config.optim.lr, config.train.out_dir) == (7, 1e-3, "some/where")
    assert config.optim.final_lr_ratio == pytest.approx(1 / 30)


def test_bad_configs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys in \\[train\\]: stepz"):
        load_config(None, ["train.stepz=3"])
    with pytest.raises(ConfigError, match=r"train\.steps must be int"):
        load_config(None, ["train.steps='many'"])
    with pytest.raises(ConfigError, match="init_from"):
        load_config(None, ["train.stage='lcft'"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cosine_schedule_warms_up_and_ends_at_a_thirtieth_of_peak() -> None:
    optim = load_config(None, ["optim.lr=0.3", "optim.warmup_steps=10"]).optim
    lrs = [learning_rate(s, 100, optim) for s in range(100)]
    assert lrs[0] == pytest.approx(0.03) and lrs[9] == pytest.approx(0.3)
    assert lrs[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
