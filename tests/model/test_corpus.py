"""The training corpus: license selection, decontamination, pieces that fit the window."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from llamacode.training.corpus import (
    MANIFEST,
    CorpusError,
    build_corpus,
    eval_leaks,
    spdx_license,
    split_text,
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("MIT", "MIT"),
        ("Apache-2.0 OR BSD-2-Clause", "Apache-2.0"),
        ("MIT AND PSF-2.0", "MIT AND PSF-2.0"),
        ("MPL-2.0", None),
        ("MPL-2.0 AND MIT", None),
        ("GPL-3.0-only OR MIT", "MIT"),
        ("Apache-2.0 WITH LLVM-exception", None),
        ("BSD-3-Clause AND Zlib", None),
    ],
)
def test_only_expressions_made_of_permissive_licenses_are_accepted(expression, expected):
    assert spdx_license(expression) == expected


def test_pieces_stay_under_the_limit_and_lose_no_text():
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200))
    pieces = split_text(text, 300)
    assert "".join(pieces) == text
    assert all(len(p) <= 300 for p in pieces)
    assert all(p.endswith("\n\n") for p in pieces[:-1])  # cut at blank lines


def _dist(site: Path, name: str, license_line: str, files: dict[str, str]) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n{license_line}\n"
    )
    record = []
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
        record.append(f"{rel},,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def test_corpus_keeps_permissive_code_records_licenses_and_drops_eval_leaks(tmp_path: Path):
    stdlib = tmp_path / "stdlib"
    (stdlib / "test").mkdir(parents=True)
    (stdlib / "kept.py").write_text("def kept():\n    return 1\n")
    (stdlib / "test" / "test_kept.py").write_text("assert True\n")
    hidden = "return _b32encode(_b32hexalphabet, s)"
    (stdlib / "leaky.py").write_text(f"def b32hexencode(s):\n    {hidden}\n")
    site = tmp_path / "site"
    _dist(site, "goodpkg", "License-Expression: MIT", {"goodpkg/__init__.py": "X = 1\n"})
    _dist(site, "copyleft", "License-Expression: GPL-3.0-only", {"copyleft/a.py": "Y = 2\n"})
    evals = tmp_path / "tasks.jsonl.gz"
    task = {"kind": "single-line", "prefix": "def b32hexencode(s):\n    ", "middle": hidden,
            "suffix": "\n", "path": "base64.py"}  # fmt: skip
    with gzip.open(evals, "wt") as f:
        f.write(json.dumps(task) + "\n")

    out = tmp_path / "corpus"
    stats = build_corpus(out, eval_paths=[evals], site_packages=[site], stdlib=stdlib)

    manifest = json.loads((out / MANIFEST).read_text())
    by_path = {e["path"]: e for e in manifest["files"]}
    assert set(by_path) == {"python-stdlib/kept.py", "goodpkg/goodpkg/__init__.py"}
    assert by_path["goodpkg/goodpkg/__init__.py"]["license"] == "MIT"
    assert by_path["python-stdlib/kept.py"]["license"] == "PSF-2.0"
    assert "copyleft" in manifest["skipped_packages"]
    assert stats.contaminated == ["python-stdlib/leaky.py"]
    assert (out / "goodpkg" / "goodpkg" / "__init__.py").read_text() == "X = 1\n"
    assert not list(tmp_path.glob(".corpus.partial-*"))


def test_short_common_middles_do_not_remove_unrelated_files(tmp_path: Path):
    path = tmp_path / "t.jsonl"
    record = {"prefix": "a = f(\n    ", "middle": "const=None,", "suffix": ")"}
    path.write_text(json.dumps(record) + "\n")
    leaks = eval_leaks([path])
    assert leaks.find("parser.add(x, const=None, y)") is None
    assert leaks.find("a = f(\n    const=None,") is not None


def test_missing_evaluation_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CorpusError, match=r"gone\.jsonl"):
        eval_leaks([tmp_path / "gone.jsonl"])
