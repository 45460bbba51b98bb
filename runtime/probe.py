"""Trying a model file in a child process before the long-lived process loads it.

llama.cpp trusts what it reads; a file crafted to crash it would take the language server
(and the user's unsaved editor state behind it) down with it. The probe loads the file and
evaluates one token in a throwaway process: a crash there becomes a typed error here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from llamacode.runtime.children import CHILD_CWD, module_argv
from llamacode.runtime.errors import (
    AdapterError,
    AdapterMismatchError,
    InvalidModelError,
    LlamacodeError,
    ModelLoadError,
    ModelNotFoundError,
)

PROBE_TIMEOUT_S = 120.0
_ERRORS: dict[str, type[LlamacodeError]] = {
    cls.__name__: cls
    for cls in (
        InvalidModelError,
        ModelLoadError,
        ModelNotFoundError,
        AdapterError,
        AdapterMismatchError,
    )
}


def probe_model(
    path: str | Path,
    adapter: str | Path | None = None,
    adapter_scale: float = 1.0,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> None:
    """Load ``path`` (with the LoRA ``adapter``, if any) in a child process and run one
    token; raise a typed error on failure."""
    path = Path(path)
    with_adapter = [str(adapter), repr(adapter_scale)] if adapter else []
    try:
        proc = subprocess.run(
            module_argv(__name__, str(path), *with_adapter),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=CHILD_CWD,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelLoadError(
            f"loading {path} took longer than {timeout_s:.0f} s in a trial run; the file may be "
            "damaged, or the disk very slow"
        ) from exc
    if proc.returncode == 0:
        return
    if proc.returncode > 0:
        try:
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            raise _ERRORS.get(report["type"], ModelLoadError)(report["message"])
        except (ValueError, IndexError, KeyError, TypeError):
            pass
        raise ModelLoadError(f"a trial load of {path} failed: {proc.stderr.strip()[-500:]}")
    name = (
        signal.Signals(-proc.returncode).name if -proc.returncode in signal.valid_signals() else "?"
    )
    if adapter:
        raise AdapterError(
            f"llama.cpp crashed ({name}) while loading {path} with the LoRA adapter {adapter}; "
            "one of them is corrupt or hostile. Nothing was loaded; try the model without the "
            "adapter, and export the adapter again."
        )
    raise InvalidModelError(
        f"llama.cpp crashed ({name}) while reading {path}; the file is corrupt or hostile. "
        "It was not loaded; download or convert it again."
    )


def _child(path: str, adapter: str | None = None, adapter_scale: str = "1.0") -> int:
    from llamacode.runtime.config import EngineConfig, GenerationConfig
    from llamacode.runtime.engine import Engine

    config = EngineConfig(
        n_ctx=64,
        n_batch=64,
        check_memory=True,
        adapter_path=adapter,
        adapter_scale=float(adapter_scale),
    )
    try:
        engine = Engine.load(path, config)
        engine.complete("a", GenerationConfig(max_tokens=1))
    except LlamacodeError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:]))
