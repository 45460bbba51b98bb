"""``llamacode`` verbs for training: ``train``, ``tune``, ``tokenizer train``,
``data prepare``, ``selfinstruct``.

Under torchrun: ``torchrun --nproc_per_node N -m llamacode.training.cli train CONFIG.toml``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from llamacode.runtime.dataclass_flags import add_flags, values_from_args
from llamacode.runtime.errors import ConfigError, LlamacodeError
from llamacode.training.tune_config import TuneConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="run a training stage (pretrain, lcft, instruct) from a TOML config",
        description="Train from CONFIG.toml (see configs/). Any field can be overridden "
        "with --set SECTION.KEY=VALUE, e.g. --set train.steps=100.",
    )
    p.add_argument(
        "config", type=Path, help="TOML config (configs/tiny-cpu.toml trains in seconds)"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in train.out_dir")
    p.add_argument("--steps", type=int, help="train.steps")
    p.add_argument("--out-dir", help="train.out_dir")
    p.add_argument("--init-from", help="train.init_from: a checkpoint to start from")
    p.add_argument("--device", help="train.device (auto, cpu, cuda)")
    p.add_argument("--compile", action="store_true", help="train.compile = true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    tune = subparsers.add_parser(
        "tune",
        help="train a FIM LoRA adapter for the default model on a repository",
        description="Tune a GGUF model to REPO's code: a LoRA adapter trained on FIM examples "
        "from the repository's files (a tenth held out), written as a GGUF adapter that "
        "serve, complete and chat apply with --adapter.",
    )
    tune.add_argument("repo", type=Path, help="the repository's root folder")
    add_flags(tune, TuneConfig)
    tune.set_defaults(func=_tune)

    tok = subparsers.add_parser("tokenizer", help="train a sentencepiece tokenizer")
    tok_sub = tok.add_subparsers(title="tokenizer commands", metavar="COMMAND", required=True)
    t = tok_sub.add_parser("train", help="train a Llama-style BPE with the Code Llama FIM pieces")
    t.add_argument("--input", nargs="+", required=True, help="source directories or files")
    t.add_argument("--languages", nargs="+", default=["python"])
    t.add_argument("--vocab-size", type=int, default=32000)
    t.add_argument("--out", type=Path, required=True, help="tokenizer.model to write")
    t.set_defaults(func=_tokenizer_train)

    data = subparsers.add_parser("data", help="prepare training data")
    data_sub = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    d = data_sub.add_parser(
        "prepare",
        help="sources -> dedupe -> split -> FIM -> token shards (or chat JSONL -> shards)",
    )
    source = d.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", help="source directories (pretraining data)")
    source.add_argument("--chat", nargs="+", help="chat JSONL files (instruction data)")
    d.add_argument("--tokenizer", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True, help="data directory to write")
    d.add_argument("--languages", nargs="+", default=["python"])
    d.add_argument("--val-fraction", type=float, default=0.05)
    d.add_argument("--fim-rate", type=float, default=0.9)
    d.add_argument("--fim-spm-rate", type=float, default=0.5)
    d.add_argument("--workers", type=int, default=0, help="0: one per CPU")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--force", action="store_true", help="replace an existing data directory")
    d.set_defaults(func=_data_prepare)

    s = subparsers.add_parser(
        "selfinstruct",
        help="generate instruction data with a teacher model, kept only when tests pass",
    )
    s.add_argument("--seeds", nargs="+", required=True, help="directories of seed Python code")
    s.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    s.add_argument("--model", help="teacher GGUF (default: the embedded default model)")
    s.add_argument("--count", type=int, default=100, help="examples to collect")
    s.add_argument("--solutions", type=int, default=5, help="candidate solutions per problem")
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--max-tokens", type=int, default=768)
    s.add_argument(
        "--eval", nargs="*", default=[], help="evaluation files to decontaminate against"
    )
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_selfinstruct)


def _train(args: argparse.Namespace) -> int:
    from llamacode.training.config import load_config
    from llamacode.training.metrics import format_mfu
    from llamacode.training.train import train

    overrides = list(args.overrides)
    for flag, key in (
        ("steps", "train.steps"),
        ("out_dir", "train.out_dir"),
        ("init_from", "train.init_from"),
        ("device", "train.device"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if args.resume:
        overrides.append("train.resume=true")
    if args.compile:
        overrides.append("train.compile=true")
    if args.no_progress:
        overrides.append("train.progress=false")
    config = load_config(args.config, overrides)
    result = train(config)
    if os.environ.get("RANK", "0") != "0":
        return 0
    if result.val_losses:
        first, last = result.val_losses[0][1], result.val_losses[-1][1]
        print(f"validation loss {first:.4f} -> {last:.4f}")
    print(
        f"{result.n_params / 1e6:.2f}M parameters, {result.tokens_per_s:,.0f} tokens/s, "
        f"MFU {format_mfu(result.mfu)}; checkpoint in {result.out_dir}"
    )
    return 0


def _tune(args: argparse.Namespace) -> int:
    from llamacode.training.tune import tune

    result = tune(args.repo, TuneConfig(**values_from_args(TuneConfig, args)))
    first, last = result.val_loss[0][1], result.val_loss[-1][1]
    print(
        f"{result.steps} steps, {result.train_tokens:,} tokens in {result.seconds / 60:.1f} min "
        f"({result.cpu_seconds_per_step:.1f} CPU s/step, {result.tokens_per_s:.0f} tokens/s); "
        f"held-out loss {first:.3f} -> {last:.3f}"
    )
    print(f"adapter: {result.adapter} ({result.adapter_bytes / 2**20:.1f} MiB)")
    print(f"use it: llamacode serve --adapter {result.adapter} (editors: adapterPath)")
    return 0


def _tokenizer_train(args: argparse.Namespace) -> int:
    from llamacode.training.sources import collect
    from llamacode.training.tokenizer import Tokenizer, train_tokenizer

    texts = (d.text for d in collect(args.input, args.languages))
    path = train_tokenizer(texts, args.out, args.vocab_size)
    tok = Tokenizer.load(path)
    print(f"wrote {path}: {tok.vocab_size} pieces, FIM ids {tok.fim_ids}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from llamacode.training.prepare import DataConfig, prepare_chat, prepare_code

    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: pass --force to replace it")
    config = DataConfig(
        sources=args.input or [],
        chat=args.chat or [],
        languages=args.languages,
        dir=str(args.out),
        val_fraction=args.val_fraction,
        fim_rate=args.fim_rate,
        fim_spm_rate=args.fim_spm_rate,
        workers=args.workers,
        seed=args.seed,
    )
    prepare = prepare_chat if args.chat else prepare_code
    index = prepare(config, args.tokenizer, args.out)
    for split, info in index["splits"].items():
        print(f"{split}: {info['documents']} documents, {info['tokens']:,} tokens")
    print(
        f"removed {index['exact_duplicates']} exact and {index['near_duplicates']} "
        f"near duplicates; wrote {args.out}"
    )
    return 0


def _selfinstruct(args: argparse.Namespace) -> int:
    from llamacode.runtime.config import EngineConfig
    from llamacode.runtime.engine import Engine
    from llamacode.runtime.models import Role, resolve_model
    from llamacode.training.selfinstruct import SelfInstructConfig, run_selfinstruct, stats_json

    engine = Engine.load(resolve_model(args.model, Role.ASKED).path, EngineConfig())
    try:
        config = SelfInstructConfig(
            count=args.count,
            solutions=args.solutions,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
        )
        stats = run_selfinstruct(engine, args.seeds, args.out, config, eval_files=args.eval)
    finally:
        engine.close()
    print(stats_json(stats))
    print(f"wrote {stats.written} examples to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llamacode.training.cli``: the training verbs alone (what torchrun launches)."""
    parser = argparse.ArgumentParser(prog="python -m llamacode.training.cli")
    register(parser.add_subparsers(title="commands", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlamacodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
