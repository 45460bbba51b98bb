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
import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from llamacode.runtime.models import ResolvedModel, Role

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
        self.adapters: dict[str, str] = {}  # role -> the LoRA adapter its model applies
        self.adapter_problem: str | None = None  # why the adapter is not used, if it is not
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
        adapter: str | None = None,
    ) -> None:
        """Start loading a model on a background thread and return at once.

        ``requested`` is a path or None (the resolution order of ``runtime.models``).
        ``adapter`` is a LoRA adapter GGUF (None: the engine config's ``adapter_path``): each
        model whose tensors it fits gets it, the others load without it (an adapter trained
        on the typing model does not fit a larger model for explicit requests).
        ``on_done(message)`` is called from the loading thread: None once the typing model is
        ready, else a message to show the user: the model did not load (state ``failed``), or
        the adapter is unusable or fits no model (the models then run without it). A newer
        :meth:`load` makes an older one's result moot.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.state = "loading"
            self.error = None
            self.adapter_problem = None
            self.loading_more = True
        thread = threading.Thread(
            target=self._load,
            args=(generation, requested, on_done, engine_config, adapter),
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
        adapter: str | None,
    ) -> None:
        from llamacode.runtime.config import EngineConfig
        from llamacode.runtime.models import resolve_model

        config = engine_config or EngineConfig()
        adapter = self._usable_adapter(generation, adapter or config.adapter_path, on_done)
        config = dataclasses.replace(config, adapter_path=None)
        refusals: list[str] = []
        try:
            typing_model = resolve_model(requested, Role.TYPING)
            engine = self._load_engine(typing_model, config, adapter, refusals)
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
        if not self._publish(generation, engine, None, {Role.TYPING: typing_model.path}):
            return
        log.info("model ready: %s (n_ctx %d)", engine.facts.name, engine.n_ctx)
        on_done(None)
        try:
            asked = self._load_asked(
                generation, requested, engine, typing_model.path, config, adapter, refusals
            )
        finally:
            with self._lock:
                if generation == self._generation:
                    self.loading_more = False
        if adapter and not any(e.adapter for e in (engine, asked) if e is not None):
            self._adapter_refused(
                generation,
                f"the LoRA adapter {adapter} fits none of the models, so none uses it: "
                + "; ".join(refusals),
                on_done,
            )

    def _usable_adapter(
        self, generation: int, adapter: str | None, on_done: Callable[[str | None], None]
    ) -> str | None:
        """The adapter if the file is a readable LoRA adapter; else None, and say why."""
        from llamacode.runtime.adapter import read_adapter
        from llamacode.runtime.errors import AdapterError

        if not adapter:
            return None
        try:
            read_adapter(adapter)
        except AdapterError as exc:
            self._adapter_refused(generation, f"{exc} The models load without it.", on_done)
            return None
        return adapter

    def _adapter_refused(
        self, generation: int, message: str, on_done: Callable[[str | None], None]
    ) -> None:
        log.error(message)
        with self._lock:
            if generation != self._generation:
                return
            self.adapter_problem = message
        on_done(message)

    def _load_engine(
        self, model: ResolvedModel, config: Any, adapter: str | None, refusals: list[str]
    ) -> Engine:
        """Load ``model`` with ``adapter`` when its tensors fit, else without it."""
        from llamacode.runtime.engine import Engine
        from llamacode.runtime.errors import AdapterError

        if adapter:
            log.info(
                "loading model %s (%s) with the LoRA adapter %s", model.path, model.source, adapter
            )
            try:
                return Engine.load(model.path, dataclasses.replace(config, adapter_path=adapter))
            except AdapterError as exc:
                log.info("%s loads without the LoRA adapter: %s", model.path.name, exc)
                refusals.append(str(exc))
        log.info("loading model %s (%s)", model.path, model.source)
        return Engine.load(model.path, config)

    def _load_asked(
        self,
        generation: int,
        requested: str | None,
        engine: Engine,
        typing_path: Any,
        config: Any,
        adapter: str | None,
        refusals: list[str],
    ) -> Engine | None:
        from llamacode.runtime.models import resolve_model

        try:
            asked_model = resolve_model(requested, Role.ASKED)
            if asked_model.path == typing_path:
                with self._lock:
                    if generation == self._generation:
                        self.paths[Role.ASKED.value] = str(typing_path)
                        self.adapters.update(_adapter_of(Role.ASKED, engine))
                return None
            asked = self._load_engine(asked_model, config, adapter, refusals)
        except Exception as exc:  # explicit requests keep using the typing model
            log.warning("the model for explicit requests did not load (%s); using %s", exc,
                        engine.facts.name)  # fmt: skip
            return None
        if self._publish(generation, engine, asked, {Role.ASKED: asked_model.path}):
            log.info("model for explicit requests ready: %s", asked.facts.name)
        return asked

    def _publish(
        self, generation: int, engine: Engine, asked: Engine | None, paths: dict[Role, Any]
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
                    self.adapters = {}
                for role, path in paths.items():
                    self.paths[role.value] = str(path)
                    self.adapters.update(_adapter_of(role, asked or engine))
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


def _adapter_of(role: Role, engine: Engine) -> dict[str, str]:
    """``{role: adapter path}`` when ``engine`` applies an adapter, else nothing."""
    return {role.value: str(engine.adapter.path)} if engine.adapter is not None else {}
