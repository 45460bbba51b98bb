"""A workspace's own Python files are never imported by llamacode or by the children it starts.

Editors start the server in the workspace folder. The server, its trial load of the model
and its chat-template renderer all run Python; a folder holding ``runtime/__init__.py`` or
``typing.py`` must not get its code run by any of them.
"""

from __future__ import annotations

from pathlib import Path

from llamacode.lsp.client import LspClient, serve_argv

PLANT = "import pathlib; pathlib.Path({marker!r}).write_text('imported')\n"


def test_a_hostile_workspace_runs_none_of_its_modules(tmp_path: Path, codellama_gguf: Path):
    workspace = tmp_path / "workspace"
    (workspace / "runtime").mkdir(parents=True)
    marker = tmp_path / "marker"
    for module in ("runtime/__init__.py", "runtime/probe.py", "typing.py", "json.py"):
        (workspace / module).write_text(PLANT.format(marker=str(marker)))
    client = LspClient(serve_argv("--threads", "1"), cwd=workspace)
    try:
        client.initialize(workspace, {"modelPath": str(codellama_gguf), "trusted": True})
        stats = client.wait_for_model()
        assert stats["model"]["state"] == "ready"  # after the trial load in a child
        answer = client.request(
            "llamacode/chat",
            {"messages": [{"role": "user", "content": "hello"}], "maxTokens": 4},
        )
        assert answer["stopReason"] != "not-ready"  # the template renderer ran
    finally:
        assert client.close() == 0
    assert not marker.exists()
