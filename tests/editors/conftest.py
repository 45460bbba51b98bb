"""A real headless Neovim with the llamacode plugin, talking to the real `llamacode serve`
with the packaged default model."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.editors.harness import PLUGIN, Editor, find_nvim, server_command, wait_for


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    pynvim = pytest.importorskip("pynvim", reason="pynvim drives Neovim: make editors-deps")
    nvim_bin = find_nvim()
    cmd = server_command()
    home = tmp_path_factory.mktemp("nvim-home")
    sock = home / "nvim.sock"
    init = home / "init.lua"
    init.write_text(
        "vim.o.swapfile = false\n"
        "vim.o.shadafile = 'NONE'\n"
        f"vim.opt.rtp:prepend({str(PLUGIN)!r})\n"
        "require('llamacode').setup({\n"
        f"  cmd = vim.json.decode({json.dumps(cmd)!r}),\n"
        "  debounce_ms = 30,\n"
        "})\n",
        encoding="utf-8",
    )
    env = dict(os.environ)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(home / var.lower())
    proc = subprocess.Popen(
        [nvim_bin, "--headless", "--clean", "-u", str(init), "--listen", str(sock)],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(sock.exists, timeout=20, what="Neovim's RPC socket")
        nvim = pynvim.attach("socket", path=str(sock))
        ed = Editor(nvim, proc, home)
        ed.open("warmup.py", "import os\n")
        wait_for(
            lambda: ed.stats().get("model", {}).get("state") in ("ready", "failed"),
            timeout=120,
            what="the model to load",
        )
        assert ed.stats()["model"]["state"] == "ready", ed.stats()["model"]
        yield ed
        nvim.command("qall!", async_=True)
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
