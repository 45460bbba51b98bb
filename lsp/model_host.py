"""The model behind the server: loaded in the background, called on one worker thread.

The event loop never blocks on llama.cpp: loading runs on its own thread, and every
generation runs on a single worker thread (the engine is serialized anyway, and one
worker keeps requests in arrival order so a cancelled one is skipped before it starts).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from runtime.engine import Engine

log = logging.getLogger("llamacode.lsp")
T = TypeVar("T")


class ModelHost:
    """Holds the engine and its state: ``idle``, ``loading``, ``ready`` or ``failed``."""

    def __init__(self) -> None:
        self.state = "idle"
        self.error: str | None = None
        self.model_path: str | None = None
        self.engine: Engine | None = None
        self._generation = 0
        self.waiting = 0  # calls submitted to the worker and not finished
        self.max_waiting = 0
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacode-model")

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.engine is not None

    def load(
        self,
        requested: str | None,
        on_done: Callable[[str | None], None],
        engine_config: Any = None,
    ) -> None:
        """Start loading a model on a background thread and return at once.

        ``requested`` is a path or None (the resolution order of ``runtime.models``).
        ``on_done(error)`` is called from the loading thread: None on success, else the
        message to show the user. A newer :meth:`load` makes an older one's result moot.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.state = "loading"
            self.error = None
        thread = threading.Thread(
            target=self._load,
            args=(generation, requested, on_done, engine_config),
            name="llamacode-load",
            daemon=True,
        )
        thread.start()

    def _load(
        self,
        generation: int,
        requested: str | None,
        on_done: Callable[[str | None], None],
        engine_config: Any,
    ) -> None:
        try:
            from runtime.config import EngineConfig
            from runtime.engine import Engine
            from runtime.models import resolve_model

            resolved = resolve_model(requested)
            log.info("loading model %s (%s)", resolved.path, resolved.source)
            engine = Engine.load(resolved.path, engine_config or EngineConfig())
        except Exception as exc:  # any failure must leave the server running
            message = f"llamacode could not load the model: {exc}"
            log.error(message)
            with self._lock:
                if generation != self._generation:
                    return
                self.state = "failed"
                self.error = message
            on_done(message)
            return
        with self._lock:
            if generation != self._generation:
                stale = engine
            else:
                stale = self.engine
                self.engine = engine
                self.state = "ready"
                self.model_path = str(resolved.path)
        if stale is not None:
            self._worker.submit(stale.close)
        if stale is not engine:
            log.info("model ready: %s (n_ctx %d)", engine.facts.name, engine.n_ctx)
            on_done(None)

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call(*args)`` on the model worker thread."""
        loop = asyncio.get_running_loop()
        self.waiting += 1
        self.max_waiting = max(self.max_waiting, self.waiting)
        try:
            return await loop.run_in_executor(self._worker, call, *args)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Release the model (server shutdown)."""
        with self._lock:
            self._generation += 1
            engine, self.engine = self.engine, None
            self.state = "idle"
        if engine is not None:
            self._worker.submit(engine.close)
        self._worker.shutdown(wait=False)
