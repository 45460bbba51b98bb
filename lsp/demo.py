"""``llamacode demo``: the main path end to end, through the language server.

Starts ``llamacode serve --stdio`` as a subprocess, opens a file as an editor would, asks
for the inline completion shown while typing, then for suggestions explicitly (the model for
explicit requests, once loaded) and a chat answer, and prints each with its latency.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from llamacode.lsp.client import LspClient, file_uri, serve_argv
from llamacode.runtime.errors import ConfigError


def pick_cursor(lines: list[str]) -> tuple[int, str]:
    """Where an editor user would ask for code: the first empty function body.

    Returns a 0-based line and the indentation an editor would have typed there
    (a blank line after an indented docstring); else the end of the file.
    """
    for i in range(1, len(lines)):
        above = lines[i - 1]
        if not lines[i].strip() and above.strip().endswith('"""') and above.startswith((" ", "\t")):
            return i, above[: len(above) - len(above.lstrip())]
    return len(lines), ""


def run_demo(
    file: str,
    *,
    line: int | None = None,
    column: int | None = None,
    model: str | None = None,
    threads: int | None = None,
    question: str = "Write a Python function that reverses a string.",
) -> int:
    """Run the demo; 0 on success."""
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"no such file: {path}; pass a source file to complete")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    flags = ["--model", model] if model else []
    if threads:
        flags += ["--threads", str(threads)]
    out = sys.stdout
    started = time.perf_counter()
    client = LspClient(serve_argv(*flags))
    try:
        # No tight time budget: the demo often runs while the machine is still busy (installing,
        # loading the second model), and a suggestion cut by the budget is not shown at all.
        client.initialize(path.parent, {"maxTokens": 64, "timeBudgetMs": 20000})
        uri = file_uri(path)
        language = "python" if path.suffix == ".py" else path.suffix.lstrip(".") or "plaintext"
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}},
        )
        stats = client.wait_for_model(until_all=True)
        load_s = time.perf_counter() - started
        if stats["model"]["state"] != "ready":
            print(f"model did not load: {stats['model']['error']}", file=sys.stderr)
            return 1
        print(
            f"server up, models ready in {load_s:.2f} s; while typing: "
            f"{Path(stats['model']['path']).name}",
            file=out,
        )

        if line is None:
            row, indent = pick_cursor(lines)
            if indent:
                # What the editor's auto-indent types on the empty line.
                client.notify(
                    "textDocument/didChange",
                    {
                        "textDocument": {"uri": uri, "version": 2},
                        "contentChanges": [
                            {
                                "range": {
                                    "start": {"line": row, "character": 0},
                                    "end": {"line": row, "character": 0},
                                },
                                "text": indent,
                            }
                        ],
                    },
                )
            col = len(indent) if indent else 0
        else:
            row = line - 1
            current = lines[row] if row < len(lines) else ""
            col = len(current.encode("utf-16-le")) // 2 if column is None else column - 1

        where = f"{path}:{row + 1}:{col + 1}"
        _show_completion(client, uri, row, col, automatic=True, where=where)
        roles = stats["model"].get("roles", {})
        if roles.get("asked") and roles.get("asked") != roles.get("typing"):
            print(f"\nmodel for explicit requests: {Path(roles['asked']).name}", file=out)
        _show_completion(client, uri, row, col, automatic=False, where=where)

        print(f"\n--- chat: {question} ---", file=out)
        t0 = time.perf_counter()
        answer = client.request(
            "llamacode/chat", {"messages": [{"role": "user", "content": question}]}
        )
        chat_ms = (time.perf_counter() - t0) * 1000
        print(answer["text"].strip(), file=out)
        print(
            f"--- chat answered in {chat_ms:.0f} ms "
            f"({answer.get('generatedTokens', 0)} tokens, {answer['stopReason']}) ---",
            file=out,
        )
        final = client.request("llamacode/stats")
        model_stats = final["model"]
        print(
            f"\nprompt tokens evaluated {model_stats['evaluated_tokens']}, "
            f"reused from KV cache {model_stats['reused_tokens']}",
            file=out,
        )
    finally:
        code = client.close()
    return 0 if code == 0 else 1


def _show_completion(
    client: LspClient, uri: str, row: int, col: int, *, automatic: bool, where: str
) -> None:
    """Ask for inline completions as an editor does while typing (automatic) or when the
    user asks, and print them."""
    t0 = time.perf_counter()
    result = client.request(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": row, "character": col},
            "context": {"triggerKind": 2 if automatic else 1},
        },
    )
    elapsed_ms = (time.perf_counter() - t0) * 1000
    items = result.get("items", []) if result else []
    kind = "while typing" if automatic else "asked for"
    print(
        f"\n--- inline completion {kind} at {where} ({elapsed_ms:.0f} ms, "
        f"{len(items)} item(s)) ---",
        file=sys.stdout,
    )
    for i, item in enumerate(items, 1):
        print(f"[{i}] {item['insertText']!r}", file=sys.stdout)
