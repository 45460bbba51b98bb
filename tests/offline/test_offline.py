"""The main paths run with the network refused, and none of them tries to reach it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GUARD = Path(__file__).parent / "guard"


def offline_run(args: list[str], netlog: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
        "LLAMACODE_NETLOG": str(netlog),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_guard_refuses_and_records_a_connection(tmp_path: Path):
    netlog = tmp_path / "net.log"
    code = "import socket; socket.create_connection(('127.0.0.1', 9), timeout=1)"
    out = offline_run([sys.executable, "-c", code], netlog)
    assert out.returncode != 0 and "network access blocked" in out.stderr
    assert "socket." in netlog.read_text()


@pytest.mark.slow
def test_complete_chat_and_info_never_touch_the_network(tmp_path: Path, default_model: Path):
    netlog = tmp_path / "net.log"
    sample = Path(__file__).parents[2] / "examples" / "sample.py"
    llamacode = [sys.executable, "-m", "llamacode.runtime"]
    runs = [
        [*llamacode, "info", str(default_model)],
        [*llamacode, "models"],
        [*llamacode, "complete", f"{sample}:12:62", "-n", "16"],
        [*llamacode, "chat", "-p", "Say hello.", "-n", "8"],
    ]
    for args in runs:
        out = offline_run(args, netlog)
        assert out.returncode == 0, (args, out.stderr)
    assert not netlog.exists(), netlog.read_text()
