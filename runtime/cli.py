"""The ``llamacode`` command: a dispatcher for every package's verbs, and the runtime's own.

Each package declares a ``register(subparsers)`` function under the ``llamacode.commands``
entry-point group; the dispatcher imports only those small modules, so ``llamacode info``
never pays for torch. Results go to stdout, diagnostics to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import entry_points
from pathlib import Path

from runtime.config import KV_CACHE_TYPES, EngineConfig, GenerationConfig
from runtime.errors import ConfigError, LlamacodeError
from runtime.fim import FimMode
from runtime.textfile import checked_text, decoded_line, read_text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llamacode`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="llamacode: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except LlamacodeError as exc:
        return _fail(str(exc))
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"cannot use{where}: {exc.strerror or exc}")
    except MemoryError:
        return _fail("out of memory; use a smaller model, a smaller --ctx, or smaller inputs")
    except Exception as exc:  # a bug: still one line, with the traceback under --verbose
        if getattr(args, "verbose", False):
            traceback.print_exc()
        return _fail(
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in llamacode; please "
            "report it (--verbose shows where it happened)"
        )


def _fail(message: str) -> int:
    """Every failure of a verb: one line on stderr, exit status 2."""
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamacode",
        description="Local, offline code completion, fill-in-the-middle and chat on GGUF models.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    seen: set[str] = set()
    for ep in sorted(entry_points(group="llamacode.commands"), key=lambda e: e.name):
        if ep.value in seen:
            continue
        seen.add(ep.value)
        try:
            register_verbs = ep.load()
        except ModuleNotFoundError as exc:
            # A package whose verbs are not part of this installation.
            if exc.name and ep.value.startswith(exc.name):
                continue
            raise
        register_verbs(sub)
    if "runtime.cli:register" not in seen:
        register(sub)
    return parser


# Shared flags ----------------------------------------------------------------------------


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Flags mirroring :class:`EngineConfig` (and the model path)."""
    defaults = EngineConfig()
    g = parser.add_argument_group("model")
    g.add_argument("-m", "--model", help="GGUF file (default: see `llamacode models`)")
    g.add_argument(
        "--ctx", type=int, default=defaults.n_ctx, help="context size (0: from the model)"
    )
    g.add_argument("--threads", type=int, default=defaults.n_threads)
    g.add_argument("--batch", type=int, default=defaults.n_batch, help="prompt batch size")
    g.add_argument(
        "--gpu-layers",
        type=int,
        default=defaults.n_gpu_layers,
        help="-1: all (default on GPU builds)",
    )
    g.add_argument(
        "--flash-attn",
        action=argparse.BooleanOptionalAction,
        default=defaults.flash_attn,
        help="default: on when layers run on a GPU",
    )
    g.add_argument(
        "--cache-type-k", choices=KV_CACHE_TYPES, default=defaults.type_k, help="default: f16"
    )
    g.add_argument(
        "--cache-type-v", choices=KV_CACHE_TYPES, default=defaults.type_v, help="default: f16"
    )
    g.add_argument(
        "--override-kv",
        action="append",
        default=[],
        metavar="KEY=TYPE:VALUE",
        help="override model metadata, e.g. tokenizer.ggml.eot_token_id=int:32010",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="show llama.cpp's log")


def add_generation_flags(parser: argparse.ArgumentParser, max_tokens: int = 128) -> None:
    """Flags mirroring :class:`GenerationConfig`."""
    defaults = GenerationConfig()
    g = parser.add_argument_group("generation")
    g.add_argument("-n", "--max-tokens", type=int, default=max_tokens)
    g.add_argument("--time-budget", type=float, default=defaults.time_budget_s, metavar="SECONDS")
    g.add_argument("--temperature", type=float, default=defaults.temperature)
    g.add_argument("--top-k", type=int, default=defaults.top_k)
    g.add_argument("--top-p", type=float, default=defaults.top_p)
    g.add_argument("--seed", type=int, default=defaults.seed)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        n_ctx=args.ctx,
        n_threads=args.threads,
        n_batch=args.batch,
        n_gpu_layers=args.gpu_layers,
        flash_attn=args.flash_attn,
        type_k=args.cache_type_k,
        type_v=args.cache_type_v,
        kv_overrides=dict(parse_override(o) for o in args.override_kv),
        verbose=args.verbose,
    )


def generation_config(args: argparse.Namespace, **extra: object) -> GenerationConfig:
    return GenerationConfig(
        max_tokens=args.max_tokens,
        time_budget_s=args.time_budget,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=tuple(args.stop),
        **extra,  # type: ignore[arg-type]
    )


def parse_override(text: str) -> tuple[str, bool | int | float | str]:
    """``key=int:5`` / ``key=float:1e6`` / ``key=bool:true`` / ``key=str:x``, as llama.cpp spells them."""
    key, sep, typed = text.partition("=")
    kind, colon, value = typed.partition(":")
    if not sep or not colon or not key:
        raise ConfigError(
            f"--override-kv {text!r}: write KEY=TYPE:VALUE, e.g. llama.rope.freq_base=float:1e6"
        )
    try:
        if kind == "int":
            return key, int(value)
        if kind == "float":
            return key, float(value)
        if kind == "bool":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return key, value.lower() == "true"
        if kind == "str":
            return key, value
    except ValueError as exc:
        raise ConfigError(f"--override-kv {text!r}: {value!r} is not a valid {kind}") from exc
    raise ConfigError(f"--override-kv {text!r}: TYPE must be int, float, bool or str")


def load_engine(args: argparse.Namespace):  # -> Engine (imported lazily: it loads llama.cpp)
    from runtime.engine import Engine
    from runtime.models import resolve_model

    resolved = resolve_model(args.model)
    return Engine.load(resolved.path, engine_config(args))


# Verbs -----------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the runtime's verbs: complete, infill, chat, info, models."""
    p = sub.add_parser("complete", help="complete code at FILE:LINE:COL (1-based)")
    p.add_argument("location", help="FILE:LINE:COL, as compilers print positions")
    _add_fim_flags(p)
    add_model_flags(p)
    add_generation_flags(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("infill", help="fill in the middle between --prefix and --suffix")
    p.add_argument("--prefix", required=True)
    p.add_argument("--suffix", default="")
    _add_fim_flags(p)
    add_model_flags(p)
    add_generation_flags(p)
    p.set_defaults(func=cmd_infill)

    p = sub.add_parser("chat", help="chat with the model (interactive, or one-shot with -p)")
    p.add_argument("-p", "--prompt", help="ask one question and exit")
    p.add_argument("--system", help="system message")
    add_model_flags(p)
    add_generation_flags(p, max_tokens=512)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("info", help="show a model's facts (architecture, context, FIM tokens, ...)")
    p.add_argument("model", nargs="?", help="GGUF file (default: the resolved model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the models llamacode can find, in resolution order")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)


def _add_fim_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fim-mode", choices=[m.value for m in FimMode], help="default: the model's")
    p.add_argument("--single-line", action="store_true", help="stop at the end of the line")
    p.add_argument(
        "--extra", action="append", default=[], metavar="FILE", help="extra context file"
    )


def _infill_config(args: argparse.Namespace) -> GenerationConfig:
    mode = FimMode(args.fim_mode) if args.fim_mode else None
    return generation_config(args, fim_mode=mode, single_line=args.single_line)


def _extra_context(args: argparse.Namespace) -> list[str]:
    chunks = []
    for name in args.extra:
        path = Path(name)
        chunks.append(f"# {path.name}\n{read_text(path, 'extra context file')}\n")
    return chunks


def split_location(location: str) -> tuple[Path, int, int]:
    """``FILE:LINE:COL`` (1-based) -> path, line, column."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ConfigError(
            f"{location!r}: write FILE:LINE:COL with 1-based numbers, e.g. main.py:12:5"
        )
    line, col = int(parts[1]), int(parts[2])
    if line < 1 or col < 1:
        raise ConfigError(f"{location!r}: line and column start at 1")
    return Path(parts[0]), line, col


def split_text_at(text: str, line: int, col: int) -> tuple[str, str]:
    """Split ``text`` at a 1-based line and column (columns count characters)."""
    lines = text.splitlines(keepends=True) or [""]
    if line > len(lines) + (1 if text.endswith("\n") else 0):
        raise ConfigError(f"line {line} is past the end of the file ({len(lines)} lines)")
    offset = sum(len(x) for x in lines[: line - 1])
    current = lines[line - 1] if line <= len(lines) else ""
    body = current.rstrip("\r\n")
    if col > len(body) + 1:
        raise ConfigError(f"column {col} is past the end of line {line} ({len(body)} characters)")
    offset += col - 1
    return text[:offset], text[offset:]


def cmd_complete(args: argparse.Namespace) -> int:
    path, line, col = split_location(args.location)
    text = read_text(path)
    prefix, suffix = split_text_at(text, line, col)
    return _run_infill(args, prefix, suffix)


def cmd_infill(args: argparse.Namespace) -> int:
    return _run_infill(args, args.prefix, args.suffix)


def _run_infill(args: argparse.Namespace, prefix: str, suffix: str) -> int:
    engine = load_engine(args)
    result = engine.infill(prefix, suffix, _extra_context(args), _infill_config(args))
    sys.stdout.write(result.text)
    if not result.text.endswith("\n"):
        sys.stdout.write("\n")
    _report(result)
    return 0


def _report(result) -> None:
    print(
        f"[{result.prompt_mode}: {result.stop_reason}, {result.generated_tokens} tokens in "
        f"{result.elapsed_s * 1000:.0f} ms, first after {result.ttft_s * 1000:.0f} ms; prompt "
        f"{result.prompt_tokens} tokens, {result.evaluated_tokens} evaluated, "
        f"{result.reused_tokens} reused]",
        file=sys.stderr,
    )


def cmd_chat(args: argparse.Namespace) -> int:
    prompt = None if args.prompt is None else checked_text(args.prompt, "prompt")
    system = checked_text(args.system, "system message") if args.system else None
    engine = load_engine(args)
    config = generation_config(args)
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})

    def ask(question: str) -> None:
        messages.append({"role": "user", "content": question})
        result = engine.chat(messages, config, on_text=_write_flush)
        print(flush=True)
        messages.append({"role": "assistant", "content": result.text})
        _report(result)

    if prompt is not None:
        ask(prompt)
        return 0
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = decoded_line(sys.stdin.buffer.readline(), "question")
        if not line:
            return 0
        if line.strip():
            ask(line.strip())


def _write_flush(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_info(args: argparse.Namespace) -> int:
    from runtime.loader import plan_load
    from runtime.model_facts import read_facts
    from runtime.models import resolve_model

    path = Path(args.model) if args.model else resolve_model().path
    facts = read_facts(path)
    plan = plan_load(facts, EngineConfig())
    if args.json:
        print(json.dumps({**facts.as_dict(), "load_plan": asdict(plan)}, indent=2))
        return 0
    fim = facts.fim
    rope = f"{facts.rope_freq_base:g}" + (
        "" if facts.rope_freq_base_stated else " (not stated; llama.cpp assumes it)"
    )
    rows = [
        ("file", str(facts.path)),
        ("name", facts.name),
        ("architecture", facts.architecture),
        ("file type", facts.file_type),
        ("size", f"{facts.size_bytes / 2**20:.1f} MiB, {facts.n_params / 1e6:.1f}M parameters"),
        (
            "layers / embd / heads",
            f"{facts.n_layer} / {facts.n_embd} / {facts.n_head} (kv {facts.n_head_kv})",
        ),
        ("trained context", str(facts.n_ctx_train)),
        ("rope freq base", rope),
        ("tokenizer", f"{facts.tokenizer_model}, {facts.vocab_size} tokens"),
        ("bos / eos / eot", f"{facts.bos} / {facts.eos} / {facts.eot}"),
    ]
    if fim is None:
        rows.append(("fim", "none (infill completes from the prefix only)"))
    else:
        modes = ", ".join(m.value.upper() for m in fim.modes)
        rows.append(
            (
                "fim",
                f"{fim.family.value}: pre {fim.pre}, suf {fim.suf}, mid {fim.mid}, eot {fim.eot}",
            )
        )
        rows.append(("fim modes", f"{modes} (default {facts.default_fim_mode.value.upper()})"))
    rows.append(
        ("chat template", "yes" if facts.chat_template else "none (a built-in fallback is used)")
    )
    layers = "all" if plan.n_gpu_layers < 0 else str(plan.n_gpu_layers)
    kv_mib = facts.kv_cache_bytes(plan.n_ctx) / 2**20
    rows.append(
        (
            "default settings",
            f"ctx {plan.n_ctx}, GPU layers {layers}, flash attention "
            f"{'on' if plan.flash_attn else 'off'}, KV cache {plan.type_k}/{plan.type_v} "
            f"({kv_mib:.0f} MiB at f16)",
        )
    )
    rows.extend(("  why", reason) for reason in plan.reasons)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from runtime.model_facts import read_facts
    from runtime.models import available_models

    rows = []
    for i, model in enumerate(available_models()):
        entry = {"path": str(model.path), "source": model.source, "used": i == 0}
        try:
            facts = read_facts(model.path)
            entry.update(
                name=facts.name,
                size_mib=round(facts.size_bytes / 2**20, 1),
                fim=facts.fim.family.value if facts.fim else None,
            )
        except LlamacodeError as exc:
            entry["problem"] = str(exc)
        rows.append(entry)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models found; pass --model PATH.gguf or set LLAMACODE_MODEL", file=sys.stderr)
        return 1
    for row in rows:
        mark = "*" if row["used"] else " "
        detail = (
            row.get("problem")
            or f"{row['name']}, {row['size_mib']} MiB, FIM: {row['fim'] or 'none'}"
        )
        print(f"{mark} {row['path']}\n    {row['source']}; {detail}")
    return 0
