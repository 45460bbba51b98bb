"""The models behind the server: loaded in the background, called on one worker thread.

Suggestions shown while typing and explicit requests (invoked completions, chat, commands)
may use different models (runtime.models.Role): a fast one for the first, a better one for
the second. The typing model loads first and the server is ready as soon as it is; the other
follows. Both share the one worker thread.

The event loop never blocks on llama.cpp: loading runs on its own thread, and every
generation runs on a single worker thread (the engines are serialized anyway, and one
worker keeps requests in arrival order so a cancelled one is skipped before it starts).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from llamacode.runtime.models import Role

if TYPE_CHECKING:
    from llamacode.runtime.engine import Engine

log = logging.getLogger("llamacode.lsp")
T = TypeVar("T")


class ModelHost:
    """Holds the engine and its state: ``idle``, ``loading``, ``ready`` or ``failed``."""

    def __init__(self) -> None:
        self.state = "idle"
        self.error: str | None = None
        self.model_path: str | None = None
        self.engine: Engine | None = None  # the typing model
        self.asked: Engine | None = None  # the model for explicit requests, once loaded
        self.paths: dict[str, str] = {}  # role -> model file
        self.loading_more = False  # the model for explicit requests is still loading
        self._generation = 0
        self.waiting = 0  # calls submitted to the worker and not finished
        self.max_waiting = 0
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacode-model")

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.engine is not None

    def engine_for(self, role: Role) -> Engine | None:
        """The engine that serves ``role`` (the typing model until the other has loaded)."""
        if role is Role.ASKED and self.asked is not None:
            return self.asked
        return self.engine

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
            self.loading_more = True
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
        from llamacode.runtime.config import EngineConfig
        from llamacode.runtime.engine import Engine
        from llamacode.runtime.models import resolve_model

        config = engine_config or EngineConfig()
        try:
            typing_model = resolve_model(requested, Role.TYPING)
            log.info("loading model %s (%s)", typing_model.path, typing_model.source)
            engine = Engine.load(typing_model.path, config)
        except Exception as exc:  # any failure must leave the server running
            message = f"llamacode could not load the model: {exc}"
            log.error(message)
            with self._lock:
                if generation != self._generation:
                    return
                self.state = "failed"
                self.error = message
                self.loading_more = False
            on_done(message)
            return
        if not self._publish(generation, engine, None, {Role.TYPING.value: typing_model.path}):
            return
        log.info("model ready: %s (n_ctx %d)", engine.facts.name, engine.n_ctx)
        on_done(None)
        try:
            self._load_asked(generation, requested, engine, typing_model.path, config)
        finally:
            with self._lock:
                if generation == self._generation:
                    self.loading_more = False

    def _load_asked(
        self, generation: int, requested: str | None, engine: Engine, typing_path: Any, config: Any
    ) -> None:
        from llamacode.runtime.engine import Engine
        from llamacode.runtime.models import resolve_model

        asked = None
        try:
            asked_model = resolve_model(requested, Role.ASKED)
            if asked_model.path == typing_path:
                with self._lock:
                    self.paths[Role.ASKED.value] = str(typing_path)
                return
            log.info("loading model %s (%s)", asked_model.path, asked_model.source)
            asked = Engine.load(asked_model.path, config)
        except Exception as exc:  # explicit requests keep using the typing model
            log.warning("the model for explicit requests did not load (%s); using %s", exc,
                        engine.facts.name)  # fmt: skip
            return
        if self._publish(generation, engine, asked, {Role.ASKED.value: asked_model.path}):
            log.info("model for explicit requests ready: %s", asked.facts.name)

    def _publish(
        self, generation: int, engine: Engine, asked: Engine | None, paths: dict[str, Any]
    ) -> bool:
        """Make freshly loaded engines current, unless a newer load started meanwhile."""
        with self._lock:
            if generation != self._generation:
                stale = [e for e in (engine, asked) if e is not None]
                current = False
            else:
                stale = [e for e in (self.engine, self.asked) if e is not None]
                stale = [e for e in stale if e is not engine and e is not asked]
                self.engine = engine
                if asked is not None:
                    self.asked = asked
                elif self.asked is not None and self.asked is not engine:
                    stale.append(self.asked)
                    self.asked = None
                self.state = "ready"
                self.model_path = str(engine.facts.path)
                if asked is None:
                    self.paths = {}
                self.paths.update({k: str(v) for k, v in paths.items()})
                current = True
        for old in stale:
            self._worker.submit(old.close)
        return current

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
            engines = [e for e in (self.engine, self.asked) if e is not None]
            self.engine = self.asked = None
            self.state = "idle"
        for engine in engines:
            self._worker.submit(engine.close)
        self._worker.shutdown(wait=False)
