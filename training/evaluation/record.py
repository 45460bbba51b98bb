"""What every evaluation writes: scores beside the model's hash, the settings and versions.

Outputs go to ``OUT/<name>.json``, ``OUT/<name>.md`` and optionally ``OUT/<name>.png``;
each file is written to a temporary name and renamed, so no partial file is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a (possibly multi-GiB) file, cached by path, size and mtime."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def runtime_versions() -> dict[str, Any]:
    """The software that produced a score."""
    return {
        "llamacode": _version("llamacode"),
        "llama_cpp_python": _version("llama_cpp_python") or _version("llama-cpp-python"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def model_record(path: str | Path, engine: Any | None = None) -> dict[str, Any]:
    """The model file, its hash and (when loaded) the facts that shape its answers."""
    path = Path(path)
    record: dict[str, Any] = {
        "path": str(path),
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }
    if engine is not None:
        facts = engine.facts
        record.update(
            name=facts.name,
            architecture=facts.architecture,
            n_ctx=engine.n_ctx,
            n_ctx_train=facts.n_ctx_train,
            fim=facts.fim.family.value if facts.fim else None,
        )
    return record


@dataclass
class RunRecord:
    """One evaluation run: what was measured, on what, how, and the results."""

    kind: str
    model: dict[str, Any]
    settings: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=runtime_versions)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "started": self.started,
            "model": self.model,
            "settings": self.settings,
            "versions": self.versions,
            "summary": self.summary,
            "details": self.details,
        }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats get four decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(map(str, headers)) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(
    record: RunRecord,
    out_dir: str | Path,
    name: str,
    table: str,
    plot: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write ``name.json``, ``name.md`` (the table under a provenance header) and a PNG."""
    out = Path(out_dir)
    written = []
    json_path = out / f"{name}.json"
    _atomic_write(
        json_path,
        lambda p: p.write_text(json.dumps(record.as_dict(), indent=2) + "\n", encoding="utf-8"),
    )
    written.append(json_path)
    header = (
        f"# {record.kind}\n\n"
        f"- model: `{record.model.get('file')}` sha256 `{record.model.get('sha256')}`\n"
        f"- started: {record.started}\n"
        f"- llamacode {record.versions.get('llamacode')}, llama-cpp-python "
        f"{record.versions.get('llama_cpp_python')}, {record.versions.get('platform')}\n"
        f"- settings: `{json.dumps(record.settings, sort_keys=True)}`\n\n"
    )
    md_path = out / f"{name}.md"
    _atomic_write(md_path, lambda p: p.write_text(header + table, encoding="utf-8"))
    written.append(md_path)
    if plot is not None:
        png_path = out / f"{name}.png"
        _atomic_write(png_path, plot)
        written.append(png_path)
    return written


def new_figure(width: float = 6.4, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
