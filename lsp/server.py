"""The llamacode language server: inline completion, completion, chat and commands over LSP.

One in-flight completion per document: a newer request or an edit cancels the older one
(its CancelToken), a cancelled request never reaches the model, and every request gets an
answer. A typed-through cache answers without the model while the user types what was
shown. The model runs on one worker thread; the event loop only does bookkeeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from llamacode.lsp.cache import CachedSuggestion, SuggestionCache
from llamacode.lsp.chat import (
    COMMANDS,
    InvalidRequest,
    command_edits,
    command_messages,
    parse_messages,
    parse_selection,
    with_context,
)
from llamacode.lsp.model_host import ModelHost
from llamacode.lsp.settings import ServerSettings
from llamacode.lsp.stats import ServerStats
from llamacode.lsp.workspace import fs_path as _fs_path
from llamacode.lsp.workspace import in_workspace
from llamacode.lsp.workspace import is_under as _under
from llamacode.runtime.config import GenerationConfig
from llamacode.runtime.context import ExtraContext
from llamacode.runtime.models import Role
from llamacode.runtime.suggest import suggest, warm
from llamacode.runtime.types import CancelToken, SuggestRequest

log = logging.getLogger("llamacode.lsp")

VERSION = "0.1.0"
CHAT_METHOD = "llamacode/chat"
STATS_METHOD = "llamacode/stats"
WARM_METHOD = "llamacode/warm"
ACCEPT = "llamacode.accept"
ACCEPT_PARTIAL = "llamacode.acceptPartial"
DISMISS = "llamacode.dismiss"
_SHOWN_LIMIT = 512
_WORD_TAIL = re.compile(r"\w*\Z")
_COMPLETION_METHODS = (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION)
_ARRIVALS_LIMIT = 1024


@dataclass
class _InFlight:
    token: CancelToken
    done: bool = False


@dataclass
class Suggestion:
    """What one completion request produced (texts already post-processed)."""

    suggestion_id: str | None
    texts: tuple[str, ...]


class LlamacodeProtocol(LanguageServerProtocol):
    """pygls's protocol plus the LSP rules it leaves out: before ``initialize``, requests
    get ServerNotInitialized and notifications other than ``exit`` are dropped; a second
    ``initialize`` and requests after ``shutdown`` get InvalidRequest (pygls would leave
    the client waiting for an answer that never comes)."""

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if self._workspace is None and method not in (None, types.INITIALIZE, types.EXIT):
            if getattr(message, "id", None) is not None:
                error = JsonRpcServerNotInitialized(f"{method}: the server is not initialized yet")
                self._send_response(message.id, error=error.to_response_error())
            else:
                log.warning("dropping %s: the server is not initialized yet", method)
            return
        request = getattr(message, "id", None) is not None and method is not None
        if self._shutdown and request and method != types.EXIT:
            error = JsonRpcInvalidRequest(f"{method}: the server is shutting down")
            self._send_response(message.id, error=error.to_response_error())
            return
        if self._workspace is not None and method == types.INITIALIZE:
            error = JsonRpcInvalidRequest("initialize: the server is already initialized")
            self._send_response(message.id, error=error.to_response_error())
            return
        if method in _COMPLETION_METHODS and getattr(message, "id", None) is not None:
            # Edits are handled as they are read, requests a moment later: the request's
            # place in line is taken now, so an edit that came after it makes it obsolete.
            self._server.arrived(message.id, message.params.text_document.uri)
        super().handle_message(message)

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, **kwargs: Any) -> None:
        # pygls files the future of every notification and of every step of its built-in
        # handlers under a fresh id and never removes it: about 2 KiB lost per keystroke.
        super()._execute_handler(msg_id, handler, callback, **kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(partial(self._forget, msg_id))

    def _forget(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        # A request cancelled before its handler started never reaches ``suggest``.
        waiting = msg_id in self._request_futures
        if self._server._arrivals.pop(msg_id, None) is not None and waiting:
            self._server.stats.client_cancelled += 1
        # The asyncio side of a cancellation reaches the model worker only on a later turn
        # of the event loop; the request's token stops it now, before the worker takes it.
        token = self._server._request_tokens.pop(msg_id, None)
        if token is not None:
            token.cancel()
        super()._handle_cancel_notification(msg_id)


class LlamacodeServer(LanguageServer):
    """pygls server plus the state completion needs (settings, model, cache, stats)."""

    def __init__(self, settings: ServerSettings, engine_config: Any = None) -> None:
        super().__init__("llamacode", VERSION, protocol_cls=LlamacodeProtocol)
        self.engine_config = engine_config
        self.base_settings = settings
        self.settings = settings
        self.host = ModelHost()
        self.cache = SuggestionCache()
        self.stats = ServerStats()
        self.extra = ExtraContext()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[str, _InFlight] = {}
        self._latest: dict[str, int] = {}  # uri -> ticket of its newest request or edit
        self._tickets = itertools.count(1)
        self._arrivals: dict[Any, int] = {}  # request id -> ticket taken on arrival
        self._shown: OrderedDict[str, str] = OrderedDict()  # id -> outcome ("" = undecided)
        self._last_shown: dict[str, str] = {}  # uri -> id of the suggestion on screen
        self._ids = itertools.count(1)
        self._chat_tokens: dict[Any, Any] = {}
        self._running_chats: set[Any] = set()  # CancelTokens of chats and commands
        self._request_tokens: dict[Any, CancelToken] = {}  # request id -> its model work
        self._warming: dict[str, CancelToken] = {}  # uri -> token of its cache warming

    # Model ----------------------------------------------------------------------------

    def start_model(self) -> None:
        """Load (or reload) the model and adapter named by the settings, in the background."""
        settings = self.settings
        self.cache.clear()
        self.host.load(
            settings.model_path, self._on_model_loaded, self.engine_config, settings.adapter_path
        )

    def _on_model_loaded(self, error: str | None) -> None:
        """Called from the loading thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if error is None:
            loop.call_soon_threadsafe(self.cache.clear)
            return
        params = types.ShowMessageParams(type=types.MessageType.Error, message=error)
        loop.call_soon_threadsafe(self.window_show_message, params)

    def in_workspace(self, uri: str) -> bool:
        """Whether ``uri`` may be completed, read for context or sent to chat.

        A ``file:`` URI's real path must lie under the root or a workspace folder the client
        named (:func:`lsp.workspace.in_workspace`).
        """
        workspace = self.workspace
        roots = [workspace.root_uri, *(folder.uri for folder in workspace.folders.values())]
        return in_workspace(uri, roots)

    def _own_token(self, token: CancelToken) -> Any:
        """File ``token`` under the current request's id, so ``$/cancelRequest`` reaches it."""
        msg_id = self.protocol.msg_id
        if msg_id is not None:
            self._request_tokens[msg_id] = token
        return msg_id

    def cancel_all(self) -> None:
        """Stop every generation: the client is gone or the server is exiting."""
        for uri in list(self._inflight):
            self.cancel_inflight(uri)
        for token in list(self._running_chats):
            token.cancel()

    # Completion -----------------------------------------------------------------------

    def cancel_inflight(self, uri: str) -> None:
        """An edit or a newer request makes the document's running request obsolete."""
        running = self._inflight.pop(uri, None)
        if running is not None and not running.done:
            running.token.cancel()
            running.done = True
            self.stats.superseded += 1

    def supersede(self, uri: str) -> int:
        """A newer request or an edit: the document's running request and any still waiting
        to start are obsolete. Returns the new ticket of ``uri``."""
        self.cancel_inflight(uri)
        warming = self._warming.pop(uri, None)
        if warming is not None:
            warming.cancel()
        ticket = self._latest[uri] = next(self._tickets)
        return ticket

    def arrived(self, msg_id: Any, uri: str) -> None:
        """A completion request for ``uri`` was read: it supersedes what came before."""
        self._arrivals[msg_id] = self.supersede(uri)
        while len(self._arrivals) > _ARRIVALS_LIMIT:  # requests cancelled before they ran
            del self._arrivals[next(iter(self._arrivals))]

    async def suggest(self, uri: str, position: types.Position, *, invoked: bool) -> Suggestion:
        """Suggestions at ``position``: from the cache, from the model, or none."""
        started = time.perf_counter()
        self.stats.requests += 1
        ticket = self._arrivals.pop(self.protocol.msg_id, None)
        if ticket is None:
            ticket = self.supersede(uri)
        try:
            # Requests and edits that arrived in the same read go first: of a burst, only
            # the newest request builds a prompt.
            await asyncio.sleep(0)
            if self._latest.get(uri) != ticket:
                self.stats.superseded += 1
                result = Suggestion(None, ())
            else:
                result = await self._suggest(uri, position, invoked=invoked)
        except asyncio.CancelledError:
            self.stats.client_cancelled += 1
            raise
        except Exception:
            log.exception("completion failed at %s %s", uri, position)
            self.stats.errors += 1
            result = Suggestion(None, ())
        if not result.texts:
            self.stats.answered_empty += 1
        self.stats.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        return result

    async def _suggest(self, uri: str, position: types.Position, *, invoked: bool) -> Suggestion:
        doc = _open_doc(self, uri)
        if doc is None or not self.settings.language_enabled(doc.language_id):
            return Suggestion(None, ())
        if not self.in_workspace(uri):
            self.stats.outside_workspace += 1
            return Suggestion(None, ())
        source = doc.source
        offset = doc.offset_at_position(position)
        prefix, suffix = _lf(source[:offset]), _lf(source[offset:])
        crlf = "\r\n" in source

        # An explicit request wants fresh suggestions (from the model for explicit requests).
        hit = None if invoked else self.cache.lookup(uri, prefix, suffix)
        if hit is not None:
            self.stats.cache_hits += 1
            return Suggestion(hit.suggestion_id, _eol(hit.texts, crlf))
        self.stats.cache_misses += 1
        if not self.host.ready:
            self.stats.not_ready += 1
            return Suggestion(None, ())

        engine = self.host.engine_for(Role.ASKED if invoked else Role.TYPING)
        settings = self.settings
        request = SuggestRequest(
            text=source,
            offset=offset,
            path=self.prompt_path(uri),
            context=self.extra.chunks_for(uri) if settings.extra_context else (),
            invoked=invoked,
            language=doc.language_id or "",
        )
        token = CancelToken()
        flight = _InFlight(token)
        self._inflight[uri] = flight
        msg_id = self._own_token(token)
        try:
            if settings.debounce_ms:
                await asyncio.sleep(settings.debounce_ms / 1000.0)
            if token.cancelled:
                return Suggestion(None, ())
            try:
                result = await self.host.run(suggest, engine, request, settings.suggestion(), token)
            except asyncio.CancelledError:
                token.cancel()
                raise
        finally:
            flight.done = True
            if self._inflight.get(uri) is flight:
                del self._inflight[uri]
            self._request_tokens.pop(msg_id, None)
        if not result.generations:
            self.stats.model_cancelled_before_start += 1
        for generation in result.generations:
            self.stats.record_generation(generation)
        if token.cancelled or not result.texts:
            return Suggestion(None, ())
        suggestion_id = f"s{next(self._ids)}"
        texts = tuple(_lf(t) for t in result.texts)
        self.cache.put(uri, prefix, suffix, CachedSuggestion(suggestion_id, texts))
        self._show(uri, suggestion_id)
        return Suggestion(suggestion_id, result.texts)

    def prompt_path(self, uri: str) -> str:
        """The document's path as the prompt names it: relative to its workspace root."""
        path = _fs_path(uri)
        if path is None:
            return uri.rsplit("/", 1)[-1]
        root = _fs_path(self.workspace.root_uri) if self.workspace.root_uri else None
        if root and _under(path, root):
            return os.path.relpath(path, root)
        return os.path.basename(path)

    async def warm_at(self, uri: str, position: types.Position) -> None:
        """Evaluate the prompt of the next keystroke at ``position`` while the editor is idle.

        Skipped when the model is busy or not ready; any edit or request for the document
        cancels it, so it never delays a suggestion.
        """
        doc = _open_doc(self, uri)
        if doc is None or not self.host.ready or self.host.waiting or not self.in_workspace(uri):
            return
        if not self.settings.language_enabled(doc.language_id):
            return
        request = SuggestRequest(
            text=doc.source,
            offset=doc.offset_at_position(position),
            path=self.prompt_path(uri),
            context=self.extra.chunks_for(uri) if self.settings.extra_context else (),
            language=doc.language_id or "",
        )
        token = self._warming[uri] = CancelToken()
        engine = self.host.engine_for(Role.TYPING)
        try:
            generation = await self.host.run(
                warm, engine, request, self.settings.suggestion(), token
            )
            self.stats.warmed += generation.evaluated_tokens > 0
        finally:
            if self._warming.get(uri) is token:
                del self._warming[uri]

    def _show(self, uri: str, suggestion_id: str) -> None:
        previous = self._last_shown.get(uri)
        if previous is not None and self._shown.get(previous) == "":
            self._shown[previous] = "dismissed"
            self.stats.dismissed += 1
        self._last_shown[uri] = suggestion_id
        self._shown[suggestion_id] = ""
        self.stats.shown += 1
        while len(self._shown) > _SHOWN_LIMIT:
            self._shown.popitem(last=False)

    def decide(self, suggestion_id: str, outcome: str) -> bool:
        """Record the user's decision on a shown suggestion; False if unknown or decided."""
        if self._shown.get(suggestion_id) != "":
            return False
        self._shown[suggestion_id] = outcome
        if outcome == "accepted":
            self.stats.accepted += 1
        elif outcome == "partial":
            self.stats.partially_accepted += 1
        else:
            self.stats.dismissed += 1
        return True

    # Chat -----------------------------------------------------------------------------

    async def run_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        on_text: Callable[[str], None] | None = None,
        cancel: Any = None,
    ) -> Any:
        """One chat answer from the model (None when the model is not ready)."""
        if not self.host.ready:
            return None
        engine = self.host.engine_for(Role.ASKED)
        config = GenerationConfig(max_tokens=max_tokens, temperature=self.settings.temperature)
        self.stats.chats += 1
        token = cancel if cancel is not None else CancelToken()

        def call() -> Any:
            return engine.chat(messages, config, cancel=token, on_text=on_text)

        self._running_chats.add(token)
        msg_id = self._own_token(token)
        try:
            return await self.host.run(call)
        except asyncio.CancelledError:
            token.cancel()
            raise
        finally:
            self._running_chats.discard(token)
            self._request_tokens.pop(msg_id, None)


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _open_doc(ls: LanguageServer, uri: str) -> Any:
    """The open document ``uri`` (pygls keys documents by the unquoted uri), or None."""
    return ls.workspace.text_documents.get(unquote(uri))


def _eol(texts: tuple[str, ...], crlf: bool) -> tuple[str, ...]:
    return tuple(t.replace("\n", "\r\n") for t in texts) if crlf else texts


def _invalid(message: str) -> JsonRpcInvalidParams:
    return JsonRpcInvalidParams(message)


def create_server(
    settings: ServerSettings | None = None, engine_config: Any = None
) -> LlamacodeServer:
    """Build the server with every feature registered (``engine_config``: an EngineConfig)."""
    server = LlamacodeServer(settings or ServerSettings(), engine_config)

    @server.feature(types.INITIALIZE)
    def on_initialize(ls: LlamacodeServer, params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls.settings = ls.base_settings.updated(params.initialization_options or {}, source="init")
        ls.start_model()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def on_configuration(
        ls: LlamacodeServer, params: types.DidChangeConfigurationParams
    ) -> None:
        values = _plain(params.settings)
        if not values and _client_can(ls, "workspace.configuration"):
            items = [types.ConfigurationItem(section="llamacode")]
            answer = await ls.workspace_configuration_async(types.ConfigurationParams(items))
            values = _plain(answer[0]) if answer else None
        if not isinstance(values, dict):
            return
        before = (ls.settings.model_path, ls.settings.adapter_path)
        ls.settings = ls.settings.updated(values, source="config")
        if (ls.settings.model_path, ls.settings.adapter_path) != before:
            ls.start_model()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def on_open(ls: LlamacodeServer, params: types.DidOpenTextDocumentParams) -> None:
        if ls.settings.extra_context and ls.in_workspace(params.text_document.uri):
            doc = ls.workspace.get_text_document(params.text_document.uri)
            ls.extra.note(params.text_document.uri, doc.lines, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def on_change(ls: LlamacodeServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.supersede(uri)
        if not ls.settings.extra_context or not ls.in_workspace(uri):
            return
        line = 0
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                line = change.range.start.line
        doc = ls.workspace.get_text_document(uri)
        ls.extra.note(uri, doc.lines, line)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def on_close(ls: LlamacodeServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.cancel_inflight(params.text_document.uri)
        ls._latest.pop(params.text_document.uri, None)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: LlamacodeServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        result = await ls.suggest(params.text_document.uri, params.position, invoked=invoked)
        rng = types.Range(start=params.position, end=params.position)
        items = [
            types.InlineCompletionItem(
                insert_text=text,
                range=rng,
                command=types.Command(
                    title="Accept suggestion", command=ACCEPT, arguments=[result.suggestion_id]
                ),
            )
            for text in result.texts
        ]
        return types.InlineCompletionList(items=items)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(
        ls: LlamacodeServer, params: types.CompletionParams
    ) -> types.CompletionList:
        uri = params.text_document.uri
        result = await ls.suggest(uri, params.position, invoked=False)
        if not result.texts:
            return types.CompletionList(is_incomplete=True, items=[])
        doc = ls.workspace.get_text_document(uri)
        offset = doc.offset_at_position(params.position)
        line_start = doc.source.rfind("\n", 0, offset) + 1
        head = doc.source[line_start:offset]
        word = _WORD_TAIL.search(head).group(0)
        start = doc.client_position_at_offset(offset - len(word))
        text = result.texts[0]
        label = (word + text).split("\n", 1)[0].strip() or text.strip().split("\n", 1)[0]
        item = types.CompletionItem(
            label=label,
            kind=types.CompletionItemKind.Text,
            detail="llamacode",
            filter_text=word + text,
            sort_text="0",
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=params.position), new_text=word + text
            ),
            command=types.Command(
                title="Accept suggestion", command=ACCEPT, arguments=[result.suggestion_id]
            ),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature(WARM_METHOD)
    async def warm_cache(ls: LlamacodeServer, params: Any) -> None:
        """``llamacode/warm`` {textDocument: {uri}, position}: the editor went idle there."""
        params = _plain(params)
        try:
            uri = params["textDocument"]["uri"]
            position = types.Position(params["position"]["line"], params["position"]["character"])
        except (KeyError, TypeError):
            log.warning("llamacode/warm needs {textDocument: {uri}, position: {line, character}}")
            return
        if isinstance(uri, str) and all(
            isinstance(v, int) for v in (position.line, position.character)
        ):
            await ls.warm_at(uri, position)

    @server.feature(STATS_METHOD)
    def stats(ls: LlamacodeServer, params: Any) -> dict[str, Any]:
        engine = ls.host.engine
        answer = ls.stats.as_dict(engine.stats.as_dict() if engine is not None else None)
        answer["model"]["state"] = ls.host.state
        answer["model"]["path"] = ls.host.model_path
        answer["model"]["error"] = ls.host.error
        answer["model"]["roles"] = dict(ls.host.paths)
        answer["model"]["adapters"] = dict(ls.host.adapters)
        answer["model"]["adapter_problem"] = ls.host.adapter_problem
        answer["model"]["loading_more"] = ls.host.loading_more
        answer["model"]["queue"] = {"waiting": ls.host.waiting, "max_waiting": ls.host.max_waiting}
        answer["settings"] = dataclasses.asdict(ls.settings)
        return answer

    @server.feature(CHAT_METHOD)
    async def chat(ls: LlamacodeServer, params: Any) -> dict[str, Any]:
        return await _chat(ls, _plain(params))

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls: LlamacodeServer, params: types.WorkDoneProgressCancelParams) -> None:
        token = ls._chat_tokens.get(params.token)
        if token is not None:
            token.cancel()

    @server.command(ACCEPT)
    def accept(ls: LlamacodeServer, *args: Any) -> bool:
        return ls.decide(_suggestion_id(args, 1), "accepted")

    @server.command(ACCEPT_PARTIAL)
    def accept_partial(ls: LlamacodeServer, *args: Any) -> bool:
        suggestion_id = _suggestion_id(args, 2)
        chars = args[1]
        if not isinstance(chars, int) or isinstance(chars, bool) or chars < 0:
            raise _invalid(f"{ACCEPT_PARTIAL}: the second argument is the accepted length (int)")
        return ls.decide(suggestion_id, "partial")

    @server.command(DISMISS)
    def dismiss(ls: LlamacodeServer, *args: Any) -> bool:
        return ls.decide(_suggestion_id(args, 1), "dismissed")

    for name in COMMANDS:
        _register_edit_command(server, name)
    return server


def _plain(value: Any) -> Any:
    """JSON values as plain dicts and lists (pygls hands custom params over as namedtuples)."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _suggestion_id(args: tuple[Any, ...], count: int) -> str:
    if len(args) != count or not isinstance(args[0], str):
        raise _invalid(f"expected {count} argument(s), the first being a suggestion id string")
    return args[0]


def _client_can(ls: LlamacodeServer, path: str) -> bool:
    node: Any = ls.client_capabilities
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return False
    return bool(node)


async def _chat(ls: LlamacodeServer, params: Any) -> dict[str, Any]:
    """``llamacode/chat``: messages plus optional file/selection context, streamed."""
    if not isinstance(params, dict):
        raise _invalid("llamacode/chat takes {messages, textDocument?, range?, workDoneToken?}")
    try:
        messages = parse_messages(params.get("messages"))
        context, language, label = None, "", ""
        if params.get("textDocument") is not None:
            selection = parse_selection(params, need_range=False)
            if not ls.in_workspace(selection.uri):
                raise InvalidRequest(f"{selection.uri} is outside the workspace folders")
            doc = _open_doc(ls, selection.uri)
            if doc is None:
                raise InvalidRequest(f"{selection.uri} is not open")
            language = doc.language_id or ""
            if selection.range is not None:
                context, label = doc.text_in_client_range(selection.range), "Selected code"
            else:
                context, label = doc.source, f"The file {selection.uri.rsplit('/', 1)[-1]}"
        max_tokens = params.get("maxTokens", ls.settings.chat_max_tokens)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest("maxTokens must be a positive integer")
    except InvalidRequest as exc:
        raise _invalid(str(exc)) from exc
    messages = with_context(messages, context, language, label)
    if context and ls.host.ready:
        engine = ls.host.engine_for(Role.ASKED)
        room = engine.n_ctx - max_tokens - 64
        if engine.count_tokens(messages[-1]["content"]) > room:
            keep = max(256, room * 3)
            messages[-1]["content"] = messages[-1]["content"][-keep:]

    token = params.get("workDoneToken")
    if token is None and _client_can(ls, "window.work_done_progress"):
        token = f"llamacode-chat-{next(ls._ids)}"
        try:
            await ls.work_done_progress.create_async(token)
        except Exception:
            log.warning("client refused a progress token; chat will not stream")
            token = None
    cancel = CancelToken()
    on_text = None
    if token is not None:
        ls._chat_tokens[token] = cancel
        ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title="llamacode chat", cancellable=True)
        )
        loop = asyncio.get_running_loop()

        def on_text(chunk: str) -> None:
            report = types.WorkDoneProgressReport(message=chunk)
            loop.call_soon_threadsafe(ls.work_done_progress.report, token, report)

    started = time.perf_counter()
    try:
        generation = await ls.run_chat(
            messages, max_tokens=max_tokens, on_text=on_text, cancel=cancel
        )
    finally:
        if token is not None:
            ls._chat_tokens.pop(token, None)
            # The worker queued its reports on the loop before its result: they go first.
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd())
            ls.work_done_progress.tokens.pop(token, None)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    if generation is None:
        return {"text": "", "stopReason": "not-ready", "latencyMs": elapsed_ms}
    return {
        "text": generation.text,
        "stopReason": generation.stop_reason,
        "latencyMs": elapsed_ms,
        "generatedTokens": generation.generated_tokens,
    }


def _register_edit_command(server: LlamacodeServer, name: str) -> None:
    command_name = f"llamacode.{name}"

    async def run(ls: LlamacodeServer, *args: Any) -> dict[str, Any]:
        if len(args) != 1:
            raise _invalid(f"{command_name} takes one argument: {{textDocument: {{uri}}, range}}")
        try:
            selection = parse_selection(_plain(args[0]), need_range=True)
        except InvalidRequest as exc:
            raise _invalid(f"{command_name}: {exc}") from exc
        if not ls.in_workspace(selection.uri):
            raise _invalid(f"{command_name}: {selection.uri} is outside the workspace folders")
        doc = _open_doc(ls, selection.uri)
        if doc is None:
            raise _invalid(f"{command_name}: {selection.uri} is not open")
        code = doc.text_in_client_range(selection.range)
        if not code.strip():
            raise _invalid(f"{command_name}: the selection is empty")
        language = doc.language_id or ""
        generation = await ls.run_chat(
            command_messages(name, code, language), max_tokens=ls.settings.chat_max_tokens
        )
        if generation is None:
            return {"text": "", "edits": [], "stopReason": "not-ready"}
        eol = "\r\n" if "\r\n" in doc.source else "\n"
        server_range = doc.range_from_client_units(selection.range)
        line_range = types.Range(
            start=types.Position(server_range.start.line, server_range.start.character),
            end=types.Position(server_range.end.line, server_range.end.character),
        )
        edits = command_edits(name, generation.text, line_range, doc.lines, language, eol)
        # edits were made in code points; send them in the client's units
        client_edits = [
            types.TextEdit(range=_to_client(doc, e.range), new_text=e.new_text) for e in edits
        ]
        return {
            "text": generation.text,
            "edits": client_edits,
            "edit": types.WorkspaceEdit(changes={selection.uri: client_edits}),
            "stopReason": generation.stop_reason,
        }

    run.__name__ = f"command_{name}"
    server.command(command_name)(run)


def _to_client(doc: Any, rng: types.Range) -> types.Range:
    from pygls.workspace.position_codec import ServerTextPosition, ServerTextRange

    server_range = ServerTextRange(
        ServerTextPosition(rng.start.line, rng.start.character),
        ServerTextPosition(rng.end.line, rng.end.character),
    )
    return doc.range_to_client_units(server_range)
