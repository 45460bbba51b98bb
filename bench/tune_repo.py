"""What tuning on a repository buys: held-out exact match before and after, the general
FIM set before and after, and the run's cost.

    .venv/bin/python bench/tune_repo.py REPO [--run DIR] [--minutes 20]

Steps (each through the `llamacode` command, so the figures are the ones a user gets;
a step whose output exists is not run again):
1. `llamacode eval build-fim-tasks REPO --held-out`: tasks cut from the held-out files only;
2. `llamacode tune REPO` (or an existing run with --run);
3. `llamacode eval fim-match` on those tasks, without and with `--adapter`;
4. `llamacode eval fim` on the general single-line sets (both HumanEval tenths: 207 tasks
   say more than 104 about a one-point drop), without and with `--adapter`.
The table goes to stdout; JSON and a bar chart to bench/out/tune/<repo>/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import OUT, ROOT, machine, machine_line, save

GENERAL = [
    ROOT / "evals" / "humaneval_single_line_tenth.jsonl.gz",
    ROOT / "evals" / "humaneval_single_line_tenth_b.jsonl.gz",
]


def llamacode(*args: str) -> None:
    command = [sys.executable, "-m", "llamacode.runtime", *args]
    print("$ llamacode " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["summary"]


def match_scores(path: Path) -> dict[str, tuple[int, float, float]]:
    """mode -> (tasks, exact match, edit similarity) over every language and kind."""
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for row in json.loads(path.read_text())["details"]:
        by_mode.setdefault(row["mode"], []).append(row)
    return {
        mode: (
            len(rows),
            sum(r["exact_match"] for r in rows) / len(rows),
            sum(r["edit_similarity"] for r in rows) / len(rows),
        )
        for mode, rows in by_mode.items()
    }


def pass_counts(path: Path) -> dict[str, tuple[int, int]]:
    """mode -> (problems passed, problems)."""
    found = summary(path)
    n = found["problems"]
    return {mode: (s["outcomes"].get("passed", 0), n) for mode, s in found["modes"].items()}


def pooled(
    base: list[dict[str, tuple[int, int]]], tuned: list[dict[str, tuple[int, int]]]
) -> dict[str, tuple[float, float]]:
    """mode -> (base, tuned) pass@1 over the sets that measured the mode both ways."""
    result = {}
    for mode in set().union(*base, *tuned):
        both = zip(base, tuned, strict=True)
        pairs = [(b[mode], t[mode]) for b, t in both if mode in b and mode in t]
        if pairs:
            problems = sum(b[1] for b, _ in pairs)
            result[mode] = (
                sum(b[0] for b, _ in pairs) / problems,
                sum(t[0] for _, t in pairs) / problems,
            )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--run", type=Path, help="an existing `llamacode tune` run directory")
    parser.add_argument("--minutes", type=float, default=None, help="tune's --minutes")
    parser.add_argument("--model", help="base GGUF (default: the typing model)")
    parser.add_argument("--per-file", type=int, default=6, help="held-out tasks per file and kind")
    parser.add_argument("--modes", default="psm,spm")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads for the evals")
    parser.add_argument(
        "--general", type=Path, action="append", help="general FIM set (repeatable; default: "
        "both HumanEval single-line tenths)"
    )  # fmt: skip
    args = parser.parse_args()

    repo = args.repo.resolve()
    out = OUT / "tune" / repo.name
    out.mkdir(parents=True, exist_ok=True)
    tasks = out / "held-out-tasks.jsonl"
    if not tasks.exists():
        llamacode("eval", "build-fim-tasks", str(repo), "--held-out",
                  "--per-file", str(args.per_file), "-o", str(tasks))  # fmt: skip
    run = args.run or out / "run"
    if not (run / "run.json").exists():
        extra = ["--minutes", str(args.minutes)] if args.minutes is not None else []
        extra += ["--model", args.model] if args.model else []
        llamacode("tune", str(repo), "--out", str(run), *extra)
    record = json.loads((run / "run.json").read_text())
    model = record["model"]
    adapter = record["adapter"]
    common = ["-m", model, "--threads", str(args.threads), "--modes", args.modes, "--no-progress"]
    sets = args.general or GENERAL
    # The base model's general scores are the same for every repository: measured once.
    general_files = {
        "base": [(OUT / "tune", f"general-base-{Path(model).stem}-{_stem(g)}") for g in sets],
        "tuned": [(out, f"general-tuned-{_stem(g)}") for g in sets],
    }
    for name, extra in (("base", []), ("tuned", ["--adapter", adapter])):
        if not (out / f"match-{name}.json").exists():
            llamacode("eval", "fim-match", str(tasks), *common, "--out", str(out),
                      "--name", f"match-{name}", *extra)  # fmt: skip
        for general_set, (folder, stem) in zip(sets, general_files[name], strict=True):
            if not (folder / f"{stem}.json").exists():
                llamacode("eval", "fim", str(general_set), *common, "--out", str(folder),
                          "--name", stem, *extra)  # fmt: skip

    matches = {n: match_scores(out / f"match-{n}.json") for n in ("base", "tuned")}
    counts = {n: [pass_counts(d / f"{s}.json") for d, s in files]
              for n, files in general_files.items()}  # fmt: skip
    general = pooled(counts["base"], counts["tuned"])
    rows = []
    for mode in args.modes.split(","):
        n, em0, es0 = matches["base"][mode]
        _, em1, es1 = matches["tuned"][mode]
        rows.append(
            {
                "mode": mode,
                "held_out_tasks": n,
                "exact_match": [em0, em1],
                "edit_similarity": [es0, es1],
                # None where a general run left the layout out
                "general_pass_at_1": list(general.get(mode, (None, None))),
            }
        )
    result = {
        "machine": machine(),
        "repository": str(repo),
        "run": {k: record[k] for k in ("steps", "train_tokens", "seconds", "cpu_seconds_per_step",
                                       "tokens_per_s", "adapter_bytes", "validation_loss")},
        "settings": record["settings"],
        "held_out_files": len(record["held_out_files"]),
        "train_files": len(record["train_files"]),
        "rows": rows,
        "general_sets": {
            _stem(g): {n: counts[n][i] for n in counts} for i, g in enumerate(sets)
        },
    }  # fmt: skip
    save(f"tune_{repo.name}", result)
    plot(rows, repo.name, out / "tune.png")

    r = result["run"]
    print(machine_line(result["machine"]))
    print(
        f"{repo.name}: {result['train_files']} training files, {result['held_out_files']} "
        f"held out; {r['steps']} steps, {r['train_tokens']:,} tokens, {r['seconds'] / 60:.1f} "
        f"min, {r['cpu_seconds_per_step']:.1f} CPU s/step, {r['tokens_per_s']:.0f} tokens/s, "
        f"adapter {r['adapter_bytes'] / 2**20:.1f} MiB\n"
    )
    print("| layout | held-out tasks | exact match | edit similarity | general pass@1 |")
    print("|---|---|---|---|---|")
    for row in rows:
        em, es, g = row["exact_match"], row["edit_similarity"], row["general_pass_at_1"]
        general_cell = " -> ".join("—" if v is None else f"{v:.1%}" for v in g)
        print(
            f"| {row['mode'].upper()} | {row['held_out_tasks']} | {em[0]:.1%} -> {em[1]:.1%} | "
            f"{es[0]:.3f} -> {es[1]:.3f} | {general_cell} |"
        )
    print(f"\ngeneral pass@1 over {', '.join(_stem(g) for g in sets)} (passed / problems):")
    for stem, by_name in result["general_sets"].items():
        cells = [f"{m.upper()} {by_name['base'][m][0]} -> {by_name['tuned'][m][0]}"
                 for m in args.modes.split(",") if m in by_name["base"] and m in by_name["tuned"]]  # fmt: skip
        print(f"  {stem}: " + ", ".join(cells) + f" of {next(iter(by_name['base'].values()))[1]}")
    return 0


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def plot(rows: list[dict[str, Any]], name: str, path: Path) -> None:
    """Before/after bars per layout: held-out exact match and general pass@1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    labels, before, after = [], [], []
    for row in rows:
        for metric, title in (("exact_match", "held-out EM"), ("general_pass_at_1", "general")):
            if None in row[metric]:
                continue
            labels.append(f"{row['mode'].upper()}\n{title}")
            before.append(row[metric][0] * 100)
            after.append(row[metric][1] * 100)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], before, width=0.4, label="base")
    ax.bar([x + 0.2 for x in xs], after, width=0.4, label="tuned")
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("%")
    ax.set_title(f"LoRA tuned on {name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
