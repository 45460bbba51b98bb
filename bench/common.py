"""Shared pieces of the speed benchmarks: the machine, the peer binaries, tables, results.

Benchmarks are scripts, not tests: each prints its table last and names the machine,
and writes the numbers as JSON under bench/out/ (gitignored).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_BIN = BENCH / "build" / "peer" / "bin"
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))


def default_model() -> Path:
    """SmolLM2-135M, the smallest catalog model (the throughput benchmarks' reference model
    unless --model is given)."""
    from llamacode.runtime.catalog import SMOLLM2
    from llamacode.runtime.models import catalog_path

    path = catalog_path(SMOLLM2)
    if not path.is_file():
        sys.exit("error: SmolLM2 is not installed: run `llamacode models install smollm2-135m`")
    return path


def peer_binary(name: str) -> Path:
    """A llama.cpp tool built by bench/build_peer.sh, or a clear instruction to build it."""
    path = PEER_BIN / name
    if not path.is_file():
        sys.exit(f"error: {path} is missing; run bench/build_peer.sh first (minutes on 2 cores)")
    return path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0.0
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gib": round(mem, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": metadata.version("llama_cpp_python"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"{info['os']}, llama-cpp-python {info['llama_cpp_python']}, {info['date']}, "
        f"load average at the end {info['load_average']}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def finish(
    name: str, payload: dict[str, Any], headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Save the JSON, then print the machine and the table (the table comes last)."""
    info = payload.setdefault("machine", machine())
    path = save(name, payload)
    print(f"\nresults: {path}", file=sys.stderr)
    print(machine_line(info))
    print(table(headers, rows))
