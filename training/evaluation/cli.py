"""``llamacode eval ...``: the quality verbs. Heavy modules load inside the handlers."""

from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any

from llamacode.runtime.cli import load_engine
from llamacode.runtime.errors import ConfigError
from llamacode.runtime.types import LINE_POLICIES, SuggestSettings

DEFAULT_OUT = Path("out/eval")
# Held-out code for the long-context prompts: parts of this interpreter's standard
# library (PSF license), present on every machine that runs llamacode.
FILLER_MODULES = (
    "argparse.py", "ast.py", "base64.py", "calendar.py", "csv.py", "dataclasses.py",
    "difflib.py", "fnmatch.py", "functools.py", "glob.py", "heapq.py", "inspect.py",
    "posixpath.py", "random.py", "shutil.py", "statistics.py", "string.py", "subprocess.py",
    "tarfile.py", "textwrap.py", "tokenize.py", "typing.py", "email", "importlib", "json",
    "logging", "urllib", "unittest",
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``llamacode eval`` and its sub-verbs."""
    from llamacode.runtime.cli import add_model_flags

    parser = subparsers.add_parser(
        "eval", help="measure model quality (FIM, completion, long context)"
    )
    sub = parser.add_subparsers(title="evaluations", metavar="EVAL")

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)

    def common(p: argparse.ArgumentParser, model: bool = True) -> None:
        if model:
            add_model_flags(p)
        p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for JSON/MD/PNG")
        p.add_argument("--name", help="base name of the output files (default: eval + model)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("fim", help="HumanEval-infilling with execution: pass@1 and pass@k")
    p.add_argument("data", type=Path, help="JSONL(.gz): task_id, prompt, suffix, test, ...")
    p.add_argument("--modes", default="psm,spm", help="comma-separated: psm, spm")
    p.add_argument("--samples", type=int, default=0, help="sampled completions per problem")
    p.add_argument("--k", default="1,10,100", help="pass@k values reported from samples")
    p.add_argument("--temperature", type=float, default=0.8, help="for sampled completions")
    p.add_argument(
        "--max-tokens", type=int, default=SuggestSettings().max_tokens, help="as the editor's"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument(
        "--line-policy",
        choices=LINE_POLICIES,
        default=SuggestSettings().line_policy,
        help="as the editor's setting",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
    common(p)
    p.set_defaults(func=_fim)

    p = sub.add_parser("fim-match", help="exact match / edit similarity on cut-out tasks")
    p.add_argument("tasks", type=Path, help="JSONL(.gz) from `llamacode eval build-fim-tasks`")
    p.add_argument("--modes", default="psm,spm")
    p.add_argument("--limit", type=int)
    common(p)
    p.set_defaults(func=_fim_match)

    p = sub.add_parser("build-fim-tasks", help="cut infilling tasks from a source tree")
    p.add_argument("sources", nargs="+", type=Path, help="directories or files")
    p.add_argument("-o", "--output", type=Path, required=True, help="tasks.jsonl or .jsonl.gz")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-file", type=int, default=2, help="tasks per file and kind")
    p.add_argument("--kinds", default="single-line,span")
    p.add_argument("--max-tasks", type=int)
    p.add_argument("--context-chars", type=int, default=2000)
    p.add_argument(
        "--held-out",
        action="store_true",
        help="only the files `llamacode tune` holds out of the repository SOURCES names",
    )
    p.set_defaults(func=_build_tasks)

    p = sub.add_parser(
        "build-single-line", help="HumanEval single-line infilling tasks for `eval fim`"
    )
    p.add_argument("source", type=Path, help="HumanEval.jsonl(.gz)")
    p.add_argument("-o", "--output", type=Path, required=True, help="tasks.jsonl or .jsonl.gz")
    p.add_argument("--every", type=int, default=1, help="keep every N-th task (deterministic)")
    p.add_argument("--start", type=int, default=0, help="the first task kept (0 .. N-1)")
    p.set_defaults(func=_build_single_line)

    p = sub.add_parser("key-retrieval", help="long-context key retrieval at depths 0/0.2/0.4")
    p.add_argument("--filler", nargs="+", type=Path, help="Python sources (default: stdlib)")
    p.add_argument("--lengths", help="comma-separated prompt lengths in tokens")
    p.add_argument("--depths", default="0,0.2,0.4")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    common(p)
    p.set_defaults(func=_key_retrieval)

    p = sub.add_parser("perplexity", help="perplexity against context length on held-out files")
    p.add_argument("sources", nargs="+", type=Path, help="held-out files or directories")
    p.add_argument("-m", "--model", help="GGUF file (default: see `llamacode models`)")
    p.add_argument("--max-length", type=int, default=0, help="tokens (0: the model's context)")
    p.add_argument("--min-tokens", type=int, default=128)
    p.add_argument("--max-files", type=int)
    p.add_argument("--threads", type=int)
    common(p, model=False)
    p.set_defaults(func=_perplexity)

    p = sub.add_parser("complete", help="HumanEval/MBPP-style prefix completion, pass@1")
    p.add_argument("data", type=Path, help="JSONL(.gz): prompt + test + entry_point, or test_list")
    p.add_argument("--max-tokens", type=int, default=384)
    p.add_argument("--limit", type=int)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
    common(p)
    p.set_defaults(func=_complete)


# Shared plumbing --------------------------------------------------------------------------


def _split(text: str, cast: Any = str) -> tuple[Any, ...]:
    from llamacode.runtime.errors import ConfigError

    try:
        return tuple(cast(x.strip()) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"cannot read the list {text!r}: {exc}") from exc


def _judge(timeout: float) -> Any:
    from llamacode.training.evaluation.execution import Judge
    from llamacode.training.sandbox import SandboxLimits

    cpu = max(1, int(timeout))
    return Judge(SandboxLimits(cpu_seconds=cpu, wall_seconds=timeout * 1.5 + 1))


def _engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import asdict

    from llamacode.runtime.cli import engine_config

    settings = asdict(engine_config(args))
    settings.pop("verbose", None)
    return settings


def _name(args: argparse.Namespace, kind: str, model: dict[str, Any]) -> str:
    if args.name:
        return args.name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model["file"]).stem)
    return f"{kind}-{stem}"


def _finish(args: argparse.Namespace, record: Any, table: str, plot: Any = None) -> None:
    import importlib.util

    from llamacode.training.evaluation.record import write_outputs

    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        print("no PNG plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        plot = None
    paths = write_outputs(record, args.out, _name(args, record.kind, record.model), table, plot)
    print(table, end="")
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)


# Handlers ---------------------------------------------------------------------------------


def _fim(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.data import load_fim_problems
    from llamacode.training.evaluation.fim_exec import FimExecConfig, evaluate_fim, fim_table
    from llamacode.training.evaluation.record import RunRecord, model_record

    problems = load_fim_problems(args.data)
    config = FimExecConfig(
        modes=_split(args.modes),
        samples=args.samples,
        ks=_split(args.k, int),
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        limit=args.limit,
        line_policy=args.line_policy,
    )
    judge = _judge(args.timeout)
    engine = load_engine(args)
    try:
        summary, details = evaluate_fim(engine, problems, judge, config, not args.no_progress)
        model = model_record(engine.facts.path, engine)
    finally:
        engine.close()
    settings = {
        "data": str(args.data),
        **config.as_dict(),
        "sandbox": judge.settings,
        "engine": _engine_settings(args),
    }
    record = RunRecord("fim", model, settings, summary, details)
    _finish(args, record, fim_table(summary))
    for mode, s in summary["modes"].items():
        extra = "".join(
            f", {k} {v:.4f}" for k, v in s.items() if k.startswith("pass@") and k != "pass@1"
        )
        print(f"{mode}: pass@1 {s['pass@1']:.4f}{extra} ({summary['problems']} problems)")
    return 0


def _fim_match(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.fim_match import (
        FimMatchConfig,
        evaluate_matches,
        match_table,
    )
    from llamacode.training.evaluation.fim_tasks import load_tasks
    from llamacode.training.evaluation.record import RunRecord, model_record

    tasks = load_tasks(args.tasks)
    config = FimMatchConfig(modes=_split(args.modes), limit=args.limit)
    engine = load_engine(args)
    try:
        summary, details = evaluate_matches(engine, tasks, config, not args.no_progress)
        model = model_record(engine.facts.path, engine)
    finally:
        engine.close()
    settings = {"tasks": str(args.tasks), **config.as_dict(), "engine": _engine_settings(args)}
    record = RunRecord("fim-match", model, settings, summary, details)
    _finish(args, record, match_table(summary))
    return 0


def _build_tasks(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.fim_tasks import (
        TaskBuildConfig,
        build_tasks,
        tasks_from_files,
        write_tasks,
    )

    config = TaskBuildConfig(
        seed=args.seed,
        per_file=args.per_file,
        kinds=_split(args.kinds),
        max_tasks=args.max_tasks,
        context_chars=args.context_chars,
    )
    if args.held_out:
        from llamacode.training.repo_data import split_repository

        if len(args.sources) != 1:
            raise ConfigError("--held-out takes one repository root")
        root = args.sources[0]
        held = split_repository(root).held_out
        tasks = tasks_from_files(((root / f.path, f.path) for f in held), config)
    else:
        tasks = build_tasks(args.sources, config)
    write_tasks(tasks, args.output)
    print(f"wrote {len(tasks)} tasks to {args.output}")
    return 0


def _build_single_line(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.fim_tasks import write_tasks
    from llamacode.training.evaluation.single_line import build_single_line

    problems = build_single_line(args.source, args.every, args.start)
    path = write_tasks(problems, args.output)
    print(f"wrote {len(problems)} tasks to {path}")
    return 0


def _key_retrieval(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.key_retrieval import (
        KeyRetrievalConfig,
        evaluate_key_retrieval,
        filler_functions,
        key_table,
        plot_key_retrieval,
    )
    from llamacode.training.evaluation.record import RunRecord, model_record

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = args.filler or [stdlib / m for m in FILLER_MODULES if (stdlib / m).exists()]
    functions = filler_functions(sources)
    config = KeyRetrievalConfig(
        lengths=_split(args.lengths, int) if args.lengths else (),
        depths=_split(args.depths, float),
        trials=args.trials,
        seed=args.seed,
    )
    engine = load_engine(args)
    try:
        summary, details = evaluate_key_retrieval(engine, functions, config, not args.no_progress)
        model = model_record(engine.facts.path, engine)
    finally:
        engine.close()
    settings = {
        "filler": [str(s) for s in sources],
        **config.as_dict(),
        "engine": _engine_settings(args),
    }
    record = RunRecord("key-retrieval", model, settings, summary, details)
    _finish(args, record, key_table(summary), lambda p: plot_key_retrieval(summary, p))
    return 0


def _perplexity(args: argparse.Namespace) -> int:
    from llamacode.runtime.config import EngineConfig
    from llamacode.runtime.loader import choose_n_ctx
    from llamacode.runtime.model_facts import read_facts
    from llamacode.runtime.models import resolve_model
    from llamacode.training.evaluation.perplexity import (
        LogitScorer,
        PerplexityConfig,
        evaluate_perplexity,
        perplexity_table,
        plot_perplexity,
    )
    from llamacode.training.evaluation.record import RunRecord, model_record

    path = resolve_model(args.model).path
    config = PerplexityConfig(
        max_length=args.max_length or choose_n_ctx(read_facts(path), EngineConfig()),
        min_tokens=args.min_tokens,
        max_files=args.max_files,
        n_threads=args.threads or EngineConfig().n_threads,
    )
    scorer = LogitScorer(path, config.max_length, config.n_batch, config.n_threads)
    try:
        summary, details = evaluate_perplexity(scorer, args.sources, config, not args.no_progress)
    finally:
        scorer.close()
    settings = {"sources": [str(s) for s in args.sources], **config.as_dict()}
    record = RunRecord("perplexity", model_record(path), settings, summary, details)
    _finish(args, record, perplexity_table(summary), lambda p: plot_perplexity(summary, p))
    return 0


def _complete(args: argparse.Namespace) -> int:
    from llamacode.training.evaluation.completion import (
        CompletionConfig,
        completion_table,
        evaluate_completion,
    )
    from llamacode.training.evaluation.data import load_code_problems
    from llamacode.training.evaluation.record import RunRecord, model_record

    problems = load_code_problems(args.data)
    config = CompletionConfig(max_tokens=args.max_tokens, limit=args.limit)
    judge = _judge(args.timeout)
    engine = load_engine(args)
    try:
        summary, details = evaluate_completion(
            engine, problems, judge, config, not args.no_progress
        )
        model = model_record(engine.facts.path, engine)
    finally:
        engine.close()
    settings = {
        "data": str(args.data),
        **config.as_dict(),
        "sandbox": judge.settings,
        "engine": _engine_settings(args),
    }
    record = RunRecord("complete", model, settings, summary, details)
    _finish(args, record, completion_table(summary))
    print(f"pass@1 {summary['pass@1']:.4f} ({summary['problems']} problems)")
    return 0
