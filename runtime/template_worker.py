"""The child process that renders chat templates, and the handle that talks to it.

One long-lived child renders requests one at a time, sent as JSON lines over a pipe. It
caps its own address space (``RLIMIT_AS``) and, before each render, its CPU time
(``RLIMIT_CPU``), so a template that allocates gigabytes gets a MemoryError and one that
spins is killed by the kernel even if its parent is gone. The parent waits for an answer
at most the render budget; past it, it kills the child and starts a fresh one for the
next render. Either way the caller gets a :class:`TemplateError` at once.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from llamacode.runtime.children import CHILD_CWD, module_argv
from llamacode.runtime.errors import TemplateError

MEMORY_LIMIT_BYTES = 512 * 1024 * 1024  # address space, Python and Jinja included
START_TIMEOUT_S = 60.0
# The child's own CPU limit per render, beyond the parent's wall-clock budget: a backstop
# for a child whose parent died while it rendered.
_CPU_GRACE_S = 3
_READ_CHUNK = 1 << 16


class _RendererGone(Exception):
    """The render process ended (killed by a limit, or crashed) before it answered."""


class TemplateWorker:
    """A handle on the render process (started on first use, restarted after a kill)."""

    def __init__(self, memory_limit: int = MEMORY_LIMIT_BYTES) -> None:
        self.memory_limit = memory_limit
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = bytearray()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The render process's id, while one runs."""
        return self._proc.pid if self._proc is not None else None

    def render(self, request: dict[str, Any], timeout_s: float) -> str:
        """Render one request (``runtime.template.render_in_sandbox`` keyword arguments)."""
        data = json.dumps({**request, "cpu_s": int(timeout_s) + _CPU_GRACE_S}).encode() + b"\n"
        with self._lock:
            proc = self._started()
            try:
                assert proc.stdin is not None
                proc.stdin.write(data)
                proc.stdin.flush()
            except OSError as exc:
                self._stop()
                raise TemplateError(
                    "the chat template renderer stopped unexpectedly; try again"
                ) from exc
            try:
                reply = self._reply(proc, time.monotonic() + timeout_s)
            except _RendererGone as exc:
                self._stop()
                raise TemplateError(
                    "the chat template made its renderer fail (it needs too much memory or "
                    "time); it was stopped"
                ) from exc
            if reply is None:
                self._stop()
                raise TemplateError(
                    f"the chat template takes longer than {timeout_s:g} s to render; it was stopped"
                )
        if "text" in reply:
            return str(reply["text"])
        raise TemplateError(str(reply.get("error", "the chat template failed")))

    def close(self) -> None:
        """Stop the render process (it also ends by itself when this process does)."""
        with self._lock:
            self._stop()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        self._proc = subprocess.Popen(
            module_argv(__name__, str(self.memory_limit)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            cwd=CHILD_CWD,
        )
        try:
            ready = self._reply(self._proc, time.monotonic() + START_TIMEOUT_S)
        except _RendererGone:
            ready = None
        if ready is None or not ready.get("ready"):
            self._stop()
            raise TemplateError(
                "the chat template renderer could not start; check that llamacode's Python "
                "environment is complete"
            )
        return self._proc

    def _reply(self, proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any] | None:
        """The child's next JSON line; None when ``deadline`` passes first (_RendererGone when
        the child's output ends or makes no sense: it died or broke)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                raise _RendererGone
            self._pending += chunk
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise _RendererGone from exc
        if not isinstance(reply, dict):
            raise _RendererGone
        return reply

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        self._pending.clear()
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


_shared: TemplateWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> TemplateWorker:
    """The process-wide render worker (stopped when the interpreter exits)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TemplateWorker()
            atexit.register(_shared.close)
        return _shared


# The child ------------------------------------------------------------------------------


def _limit(kind: str, soft: int) -> None:
    """Lower one of this process's limits; a platform that lacks it keeps the others."""
    try:
        import resource

        which = getattr(resource, kind)
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))
    except (ImportError, AttributeError, ValueError, OSError):
        pass


def _cpu_used() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _render_line(line: bytes) -> dict[str, Any]:
    from llamacode.runtime.template import render_in_sandbox

    try:
        request = json.loads(line)
        _limit("RLIMIT_CPU", int(_cpu_used()) + 1 + int(request.pop("cpu_s")))
        return {"text": render_in_sandbox(**request)}
    except TemplateError as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": "the chat template needs too much memory; it was stopped"}
    except (ValueError, TypeError, KeyError) as exc:
        return {"error": f"the chat template renderer got a bad request: {exc}"}


def _serve(memory_limit: int) -> int:
    import llamacode.runtime.template  # noqa: F401  (Jinja is loaded before the memory cap)

    _limit("RLIMIT_AS", memory_limit)
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        reply = _render_line(line)
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1])))
