"""`llamacode convert`, `llamacode quantize` and `llamacode fix-fim`."""

from __future__ import annotations

import argparse
from pathlib import Path

from llamacode.convert.atomic import refuse_existing, stopped_by_signals_cleanly
from llamacode.runtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="checkpoint / Hugging Face Llama -> GGUF, or GGUF -> checkpoint",
        description=(
            "SRC a checkpoint or Hugging Face Llama directory: write OUT as a GGUF. "
            "SRC a .gguf file: write OUT as a checkpoint directory (dequantized float32)."
        ),
    )
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument(
        "--type",
        dest="out_type",
        choices=["f32", "f16", "bf16", "q8_0", "q4_0"],
        help="GGUF tensor type when writing a GGUF (default f16)",
    )
    p.add_argument("--name", help="general.name of the GGUF (default: the source directory's name)")
    p.add_argument(
        "--bpe-pre",
        help="llama.cpp pre-tokenizer name for a tokenizer.json BPE it cannot recognise",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace OUT if it is an existing file (a checkpoint directory is never replaced)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_convert)

    q = subparsers.add_parser(
        "quantize",
        help="GGUF -> GGUF of another type (f16, q8_0, Q4_K_M, Q5_K_M, Q6_K, ...)",
    )
    q.add_argument("src", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("type", help="f32, f16, bf16, q8_0, q4_0 (numpy) or any llama.cpp type")
    q.add_argument(
        "--engine",
        choices=["auto", "numpy", "llama.cpp"],
        default="auto",
        help="auto: numpy for the five simple types, llama.cpp for the rest",
    )
    q.add_argument("--threads", type=int, help="llama.cpp quantizer threads (default: all)")
    q.add_argument(
        "--allow-requantize",
        action="store_true",
        help="accept an already quantized input (quality suffers; prefer an f16 source)",
    )
    q.add_argument("--force", action="store_true", help="replace OUT if it exists")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_quantize)

    f = subparsers.add_parser(
        "fix-fim",
        help="add missing FIM/EOT token ids to a GGUF (published Code Llama files)",
    )
    f.add_argument("src", type=Path)
    f.add_argument("out", type=Path)
    f.add_argument("--force", action="store_true", help="replace OUT if it exists")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(func=_fix_fim)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _convert(args: argparse.Namespace) -> int:
    with stopped_by_signals_cleanly():
        return _convert_now(args)


def _convert_now(args: argparse.Namespace) -> int:
    from llamacode.convert.gguf_kv import is_gguf

    progress = not args.no_progress
    if args.src.is_file() and is_gguf(args.src):
        if args.out_type or args.name or args.bpe_pre:
            raise ConfigError(
                "--type, --name and --bpe-pre apply when writing a GGUF, not a checkpoint"
            )
        from llamacode.convert.import_gguf import import_gguf

        report = import_gguf(args.src, args.out, progress=progress)
        hp = report.hparams
        print(
            f"wrote checkpoint {report.output} ({hp.n_layers} layers, dim {hp.dim}, vocab "
            f"{hp.vocab_size}, FIM {report.fim or 'none'}) in {report.seconds:.1f} s"
        )
        return 0
    from llamacode.convert.export_gguf import export_gguf

    refuse_existing(args.out, args.force)
    report = export_gguf(
        args.src,
        args.out,
        out_type=args.out_type or "f16",
        name=args.name,
        bpe_pre=args.bpe_pre,
        progress=progress,
    )
    types = ", ".join(f"{n} {k}" for k, n in sorted(report.tensor_types.items()))
    print(
        f"wrote {report.output}: {_mb(report.bytes_written)} in {report.seconds:.1f} s "
        f"({report.bytes_written / 1e6 / max(report.seconds, 1e-9):.0f} MB/s); tensors: {types}"
    )
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from llamacode.convert.quantize import quantize_gguf

    refuse_existing(args.out, args.force)
    with stopped_by_signals_cleanly():
        report = quantize_gguf(
            args.src,
            args.out,
            args.type,
            engine=args.engine,
            threads=args.threads,
            allow_requantize=args.allow_requantize,
            progress=not args.no_progress,
        )
    types = ", ".join(f"{n} {k}" for k, n in sorted(report.tensor_types.items()))
    print(
        f"wrote {report.output}: {_mb(report.input_bytes)} -> {_mb(report.output_bytes)} "
        f"({report.output_bytes / report.input_bytes:.2f}x) in {report.seconds:.1f} s with "
        f"{report.engine}; tensors: {types}"
    )
    return 0


def _fix_fim(args: argparse.Namespace) -> int:
    from llamacode.convert.fix_fim import fix_fim

    refuse_existing(args.out, args.force)
    with stopped_by_signals_cleanly():
        fim, added = fix_fim(args.src, args.out, progress=not args.no_progress)
    print(
        f"wrote {args.out}: FIM pre {fim.pre}, suf {fim.suf}, mid {fim.mid}, eot {fim.eot}; "
        + (f"added {', '.join(added)}" if added else "all keys were already present")
    )
    return 0
