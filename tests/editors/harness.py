"""Driving a real headless Neovim with the llamacode plugin over its RPC socket."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editors" / "nvim"
BIN = Path(sys.executable).parent
T = TypeVar("T")


def find_nvim() -> str:
    """The nvim that `make editors-deps` installs into the virtualenv, else one on PATH."""
    for candidate in (BIN / "nvim", shutil.which("nvim")):
        if candidate and Path(candidate).exists():
            out = subprocess.run(
                [str(candidate), "--version"], capture_output=True, text=True, check=False
            ).stdout
            version = out.split()[1].lstrip("v") if out.startswith("NVIM") else "0"
            major, minor = (int(x) for x in version.split(".")[:2])
            if (major, minor) >= (0, 11):
                return str(candidate)
    pytest.fail("Neovim >= 0.11 not found: run `make editors-deps` (installs it into .venv)")


def server_command() -> list[str]:
    """`llamacode serve --stdio` from this environment, with short suggestions."""
    exe = BIN / "llamacode"
    probe = subprocess.run(
        [str(exe), "serve", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.fail(f"`{exe} serve --help` failed: {probe.stderr.strip()[-300:]}")
    return [
        str(exe),
        "serve",
        "--stdio",
        "--max-tokens",
        "24",
        "--line-policy",
        "multi",
        # a generous budget: a loaded machine must not turn suggestions into empty answers
        "--time-budget-ms",
        "30000",
    ]


def wait_for(fn: Callable[[], T], timeout: float = 60.0, what: str = "condition") -> T:
    """Poll `fn` until it returns something truthy."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class Editor:
    """One headless Neovim process with the plugin set up, and helpers to read its state."""

    def __init__(self, nvim: Any, proc: subprocess.Popen[bytes], workdir: Path) -> None:
        self.nvim = nvim
        self.proc = proc
        self.workdir = workdir

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def open(self, name: str, text: str) -> None:
        path = self.workdir / name
        path.write_text(text, encoding="utf-8")
        self.normal_mode()
        self.nvim.command(f"edit {path}")
        wait_for(
            lambda: self.lua("return #vim.lsp.get_clients({name='llamacode', bufnr=0})"),
            timeout=30,
            what="the llamacode client to attach",
        )

    def normal_mode(self) -> None:
        """Leave insert mode the way a user does, and wait until Neovim has."""
        if self.mode() != "n":
            self.nvim.input("<Esc>")
            wait_for(lambda: self.mode() == "n", timeout=10, what="normal mode")

    def lines(self) -> list[str]:
        return self.nvim.current.buffer[:]

    def ghost(self) -> str | None:
        return self.lua("return require('llamacode.ghost').current()")

    def marks(self) -> list[Any]:
        return self.lua(
            "return vim.api.nvim_buf_get_extmarks(0, require('llamacode.ghost').ns, 0, -1,"
            " {details = true})"
        )

    def mode(self) -> str:
        return self.nvim.api.get_mode()["mode"]

    def stats(self) -> dict[str, Any]:
        return self.lua(
            "local c = vim.lsp.get_clients({name='llamacode'})[1]"
            " local r = c:request_sync('llamacode/stats', {}, 5000, 0)"
            " return r and r.result or vim.empty_dict()"
        )

    def type_until_ghost(self, keys: str, timeout: float = 90.0) -> str:
        """Type `keys` in insert mode, then wait for ghost text."""
        self.nvim.input(keys)
        try:
            return wait_for(self.ghost, timeout=timeout, what=f"ghost text after typing {keys!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; editor state: {self.describe()}") from None

    def describe(self) -> str:
        """What a failing test should print about the editor."""
        s = self.stats()
        return (
            f"mode={self.mode()} cursor={self.nvim.current.window.cursor} "
            f"lines={self.lines()[:4]} requests={s.get('requests')} "
            f"empty={s.get('answered_empty')} model={s.get('model', {}).get('state')}"
        )
