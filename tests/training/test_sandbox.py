"""The sandbox stops each kind of misbehaviour and reports it as that kind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llamacode.training.sandbox import Outcome, Sandbox, SandboxError, SandboxLimits


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(
        SandboxLimits(
            cpu_seconds=1,
            wall_seconds=3,
            memory_bytes=256 << 20,
            max_processes=8,
            max_output_bytes=4096,
        )
    )


def test_passing_and_failing_programs(sandbox: Sandbox) -> None:
    ok = sandbox.run(
        "from helper import add\nassert add(2, 3) == 5\nprint('ok')",
        {"helper.py": "def add(a, b):\n    return a + b\n"},
    )
    assert ok.outcome is Outcome.PASSED and ok.stdout == "ok\n"
    bad = sandbox.run("assert 1 + 1 == 3")
    assert bad.outcome is Outcome.FAILED and "AssertionError" in bad.stderr


@pytest.mark.slow
def test_infinite_loop_is_a_timeout(sandbox: Sandbox) -> None:
    assert sandbox.run("while True:\n    pass").outcome is Outcome.TIMEOUT
    assert sandbox.run("import time\ntime.sleep(60)").outcome is Outcome.TIMEOUT  # wall clock


def test_memory_bomb_is_a_memory_outcome(sandbox: Sandbox) -> None:
    result = sandbox.run("blocks = []\nwhile True:\n    blocks.append(bytearray(50 << 20))")
    assert result.outcome is Outcome.MEMORY


def test_fork_bomb_hits_the_process_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("import os\nwhile True:\n    os.fork()")
    assert result.outcome is Outcome.PROCESS_LIMIT


def test_network_call_is_blocked(sandbox: Sandbox) -> None:
    result = sandbox.run(
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))"
    )
    assert result.outcome is Outcome.NETWORK_BLOCKED
    dns = sandbox.run(
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)"
    )
    assert dns.outcome is Outcome.NETWORK_BLOCKED


@pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces for non-root need user namespaces"
)
def test_network_namespace_has_no_usable_interface(sandbox: Sandbox) -> None:
    assert sandbox.network_isolation == "namespace"
    result = sandbox.run("print(open('/proc/net/dev').read())")
    interfaces = [
        line.split(":")[0].strip() for line in result.stdout.splitlines()[2:] if ":" in line
    ]
    assert interfaces == ["lo"]


def test_write_outside_scratch_is_blocked(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = sandbox.run(f"open({str(target)!r}, 'w').write('x')")
    assert result.outcome is Outcome.WRITE_BLOCKED
    assert not target.exists()
    inside = sandbox.run("open('notes.txt', 'w').write('x')\nimport os\nos.remove('notes.txt')")
    assert inside.outcome is Outcome.PASSED


def test_output_flood_is_an_output_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    print('x' * 1000)")
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert len(result.stdout) <= 4096


def test_segfault_is_a_crash(sandbox: Sandbox) -> None:
    assert sandbox.run("import ctypes\nctypes.string_at(0)").outcome is Outcome.CRASHED


def test_environment_is_clean_and_cwd_is_scratch(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    result = sandbox.run("import os, json\nprint(json.dumps([dict(os.environ), os.getcwd()]))")
    assert "SECRET_TOKEN" not in result.stdout and "llamacode-sandbox-" in result.stdout


def test_limits_that_cannot_be_set_raise_instead_of_failing_the_program() -> None:
    impossible = Sandbox(SandboxLimits(max_open_files=1 << 40))
    with pytest.raises(SandboxError, match="cannot start the sandbox"):
        impossible.run("print('never runs')")
