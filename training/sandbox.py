"""Running untrusted Python (generated solutions and their tests) in a sandboxed subprocess.

Limits and isolation, each enforced by the kernel where it can be:

- CPU time (RLIMIT_CPU) and a wall-clock deadline: ``timeout``.
- Address space (RLIMIT_AS): ``memory``.
- Processes (RLIMIT_NPROC): ``process-limit``. The kernel never applies this limit to
  root, so as root the child runs under a uid of its own (which also lets every process
  it left behind be killed at the end).
- Output (bytes read from stdout/stderr, RLIMIT_FSIZE for files): ``output-limit``.
- No network: a fresh network namespace (only a down loopback) when the kernel allows
  it, and in every case an audit hook that refuses sockets: ``network-blocked``.
- Writes only inside a scratch directory, the child's cwd, HOME and TMPDIR: the audit hook
  refuses other writes (the unprivileged uid makes most of the file system read-only
  too): ``write-outside-scratch-blocked``.
- A clean environment, isolated mode (``python -I``).

A limit that cannot be set raises :class:`SandboxError`: a broken sandbox is never
reported as a failing program.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from llamacode.runtime.errors import LlamacodeError

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


class SandboxError(LlamacodeError):
    """The sandbox could not be set up; nothing about the program is known."""


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    PROCESS_LIMIT = "process-limit"
    NETWORK_BLOCKED = "network-blocked"
    WRITE_BLOCKED = "write-outside-scratch-blocked"
    OUTPUT_LIMIT = "output-limit"
    CRASHED = "crashed"


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_bytes: int = 1 << 30
    max_processes: int = 32
    max_output_bytes: int = 1 << 20
    max_file_bytes: int = 16 << 20
    max_open_files: int = 256


@dataclass
class SandboxResult:
    outcome: Outcome
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    events: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


# Runs first in the child: installs the audit hook, then runs the program as __main__.
_BOOTSTRAP = r"""
import os, sys
_fd, _root, _main = int(sys.argv[1]), os.path.realpath(sys.argv[2]), sys.argv[3]
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ALLOWED = {"/dev/null", "/dev/stdout", "/dev/stderr"}
_NET = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.getnameinfo"}
_PATH_EVENTS = {"os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,),
                "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (1,),
                "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,)}

def _report(kind, detail):
    try:
        os.write(_fd, f"{kind} {detail}\n".encode("utf-8", "replace")[:500])
    except OSError:
        pass

def _outside(path):
    if isinstance(path, int) or path is None:
        return False
    p = os.path.realpath(os.fsdecode(path))
    return p not in _ALLOWED and p != _root and not p.startswith(_root + os.sep)

def _hook(event, args):
    if event in _NET:
        family = getattr(args[0], "family", None) if args else None
        if family is not None:
            import socket as _s
            if family == _s.AF_UNIX:
                return
            args = args[1:]
        _report("network", f"{event} {args!r}"[:200])
        raise PermissionError(13, "network access is blocked in the sandbox")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags > 0 and flags & _WRITE_FLAGS)
        if writing and _outside(path):
            _report("write", os.fsdecode(path))
            raise PermissionError(13, "writing outside the scratch directory is blocked", path)
    elif event in _PATH_EVENTS:
        for i in _PATH_EVENTS[event]:
            if i < len(args) and _outside(args[i]):
                _report("write", f"{event} {os.fsdecode(args[i])}")
                raise PermissionError(13, "changing files outside the scratch directory is blocked")

sys.addaudithook(_hook)
sys.argv = [_main]
sys.path.insert(0, _root)
import runpy
runpy.run_path(_main, run_name="__main__")
"""

_MEMORY = re.compile(r"\bMemoryError\b|Cannot allocate memory|std::bad_alloc")
_PROCESSES = re.compile(
    r"BlockingIOError: \[Errno 11\]|\[Errno 11\] Resource temporarily unavailable"
)


def _libc_unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare failed: {os.strerror(err)}")


def _count_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _network_namespace_works(flags: int) -> bool:
    """Whether this kernel lets us create a network namespace (tried in a throwaway child)."""
    try:
        proc = subprocess.run(
            ["/bin/true"],
            preexec_fn=lambda: _libc_unshare(flags),
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (subprocess.SubprocessError, OSError):
        return False
    return proc.returncode == 0


def _usable_by_others(path: str) -> bool:
    """Whether a user other than the owner can execute ``path`` (every directory searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if real.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def default_python(as_root: bool) -> str:
    """This interpreter, or (as root, when it lives somewhere only root can read, such as a
    pyenv under /root) a system Python 3 the unprivileged sandbox user can run."""
    if not as_root or _usable_by_others(sys.executable):
        return sys.executable
    for candidate in (
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        if os.path.exists(candidate) and _usable_by_others(candidate):
            return candidate
    raise SandboxError(
        f"{sys.executable} is not readable by an unprivileged user and no system python3 was "
        "found; install python3 system-wide or pass an interpreter path to the sandbox"
    )


class Sandbox:
    """Runs Python programs under :class:`SandboxLimits`; one instance can run many."""

    _netns_cache: ClassVar[dict[int, bool]] = {}

    def __init__(self, limits: SandboxLimits | None = None, python: str | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.as_root = os.geteuid() == 0
        self.python = python or default_python(self.as_root)
        flags = CLONE_NEWNET if self.as_root else CLONE_NEWUSER | CLONE_NEWNET
        if flags not in Sandbox._netns_cache:
            Sandbox._netns_cache[flags] = _network_namespace_works(flags)
        self.netns_flags = flags if Sandbox._netns_cache[flags] else 0

    @property
    def network_isolation(self) -> str:
        """``namespace`` (kernel) or ``audit-hook`` (Python-level guard only)."""
        return "namespace" if self.netns_flags else "audit-hook"

    def run(self, code: str, files: Mapping[str, str] | None = None) -> SandboxResult:
        """Run ``code`` as ``main.py`` in a fresh scratch directory holding ``files``."""
        scratch = Path(tempfile.mkdtemp(prefix="llamacode-sandbox-"))
        uid = gid = None
        if self.as_root:
            # A uid of its own per run: RLIMIT_NPROC applies, and kill(-1) at the end reaches
            # exactly the processes this run left behind.
            uid = gid = 200_000 + (os.getpid() * 97 + time.monotonic_ns()) % 800_000
        read_fd, write_fd = os.pipe()
        try:
            for name, text in {**(files or {}), "main.py": code}.items():
                target = (scratch / name).resolve()
                if scratch.resolve() not in target.parents:
                    raise SandboxError(f"sandbox file name {name!r} escapes the scratch directory")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            if uid is not None:
                for path in [scratch, *scratch.rglob("*")]:
                    os.chown(path, uid, gid)
            scratch.chmod(0o700)
            return self._execute(scratch, uid, gid, read_fd, write_fd)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                with _suppress_oserror():
                    os.close(write_fd)
            shutil.rmtree(scratch, ignore_errors=True)

    def _execute(
        self, scratch: Path, uid: int | None, gid: int | None, read_fd: int, write_fd: int
    ) -> SandboxResult:
        limits = self.limits
        nproc = limits.max_processes
        if uid is None:
            nproc += _count_processes(os.getuid())
        netns_flags = self.netns_flags

        def preexec() -> None:
            os.setsid()
            if netns_flags:
                _libc_unshare(netns_flags)
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            resource.setrlimit(
                resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes)
            )
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files)
            )
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if uid is not None and gid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                if os.getuid() != uid or os.geteuid() != uid:
                    raise OSError(errno.EPERM, "could not drop privileges")

        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        argv = [self.python, "-I", "-c", _BOOTSTRAP, str(write_fd), str(scratch), "main.py"]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                preexec_fn=preexec,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise SandboxError(
                f"cannot start the sandbox (limits or isolation failed): {exc}"
            ) from exc
        os.close(write_fd)
        try:
            stdout, stderr, over, timed_out = self._collect(proc, start)
        finally:
            self._kill_all(proc, uid)
        seconds = time.monotonic() - start
        events = self._events(read_fd)
        out = stdout.decode("utf-8", "replace")
        err = stderr.decode("utf-8", "replace")
        outcome = self._classify(proc.returncode, err, events, over, timed_out)
        return SandboxResult(outcome, proc.returncode, out, err, seconds, events)

    def _collect(self, proc: subprocess.Popen, start: float) -> tuple[bytes, bytes, bool, bool]:
        """Read both pipes up to the output limit, until exit or the wall-clock deadline."""
        assert proc.stdout is not None and proc.stderr is not None
        limit = self.limits.max_output_bytes
        buffers = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        selector = selectors.DefaultSelector()
        for pipe in buffers:
            selector.register(pipe, selectors.EVENT_READ)
        deadline = start + self.limits.wall_seconds
        over = timed_out = False
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(remaining, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffers[key.fileobj] += chunk  # type: ignore[index]
                if sum(len(b) for b in buffers.values()) > limit:
                    over = True
            if over:
                break
        selector.close()
        if not (over or timed_out):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        return (
            bytes(buffers[proc.stdout])[:limit],
            bytes(buffers[proc.stderr])[:limit],
            over,
            timed_out,
        )

    def _kill_all(self, proc: subprocess.Popen, uid: int | None) -> None:
        with _suppress_oserror():
            os.killpg(proc.pid, signal.SIGKILL)
        if uid is not None:
            # kill(-1) from a process with the run's uid reaches everything the run started,
            # including processes that left the process group.
            for _ in range(3):
                subprocess.run(
                    ["/bin/kill", "-9", "-1"],
                    preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    @staticmethod
    def _events(read_fd: int) -> list[str]:
        fcntl.fcntl(read_fd, fcntl.F_SETFL, os.O_NONBLOCK)
        data = bytearray()
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace").splitlines()

    @staticmethod
    def _classify(
        returncode: int | None, stderr: str, events: list[str], over: bool, timed_out: bool
    ) -> Outcome:
        if over:
            return Outcome.OUTPUT_LIMIT
        if any(e.startswith("network ") for e in events):
            return Outcome.NETWORK_BLOCKED
        if any(e.startswith("write ") for e in events):
            return Outcome.WRITE_BLOCKED
        if _PROCESSES.search(stderr):
            return Outcome.PROCESS_LIMIT
        if _MEMORY.search(stderr):
            return Outcome.MEMORY
        if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome.TIMEOUT
        if returncode == -signal.SIGXFSZ:
            return Outcome.OUTPUT_LIMIT
        if returncode is not None and returncode < 0:
            return Outcome.CRASHED
        return Outcome.PASSED if returncode == 0 else Outcome.FAILED


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]
