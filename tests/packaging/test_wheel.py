"""The built wheel, installed for real (not editable) into a fresh environment, serves.

It installs one top-level name, ``llamacode``; the language server it installs starts, runs
its trial load of the model in a child process from the installed package, and completes.
The fresh environment borrows the dependencies of the test environment (a path file), so
the test neither downloads nor compiles them again.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llamacode.lsp.client import LspClient

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
    )
    (found,) = out.glob("llamacode-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin directory."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    purelib = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "borrowed-deps.pth").write_text("".join(f"{d}\n" for d in _dependency_dirs()))
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    return bin_dir


def test_the_wheel_installs_only_the_llamacode_namespace(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert "llamacode" in tops
    assert all(top == "llamacode" or top.endswith(".dist-info") for top in tops), tops
    assert "llamacode/runtime/probe.py" in names and "llamacode/lsp/server.py" in names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_the_installed_server_trial_loads_and_completes(
    installed: Path, tmp_path: Path, codellama_gguf: Path
):
    where = subprocess.run(
        [str(installed / "python"), "-I", "-c", "import llamacode.runtime as r; print(r.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where
    generic = subprocess.run(
        [str(installed / "python"), "-I", "-c", "import runtime"], capture_output=True, cwd=tmp_path
    )
    assert generic.returncode != 0
    client = LspClient(
        [str(installed / "llamacode"), "serve", "--stdio", "--threads", "1"], cwd=tmp_path
    )
    try:
        client.initialize(tmp_path, {"modelPath": str(codellama_gguf), "trusted": True})
        stats = client.wait_for_model()
        assert stats["model"]["state"] == "ready", stats["model"]["error"]
        uri = (tmp_path / "a.py").as_uri()
        text = "def add(x, y):\n"
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        result = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 0, "character": 14},
                "context": {"triggerKind": 2},
            },
        )
        assert result["items"][0]["insertText"] == " return x + y"
    finally:
        assert client.close() == 0


def _dependency_dirs() -> list[str]:
    """Where this environment's copies of llamacode's dependencies are installed."""
    import gguf
    import jinja2
    import llama_cpp
    import lsprotocol
    import numpy
    import pygls
    import tqdm

    modules = (gguf, jinja2, llama_cpp, lsprotocol, numpy, pygls, tqdm)
    return sorted({str(Path(m.__file__).resolve().parents[1]) for m in modules})
