"""The llamacode language server (pygls): ``llamacode serve``.

Standard LSP: ``textDocument/inlineCompletion`` (several items when invoked), the
``textDocument/completion`` fallback, full and incremental sync, settings from
``initializationOptions`` and ``workspace/didChangeConfiguration`` (flat or under
``llamacode``; camelCase keys of :class:`lsp.settings.ServerSettings`, e.g. ``maxTokens``,
``contextBudget``, ``timeBudgetMs``, ``linePolicy``, ``languages``, ``modelPath``; only
``initializationOptions.trusted`` lets a workspace name the model).

Our own messages:

- ``llamacode/chat`` request: ``{messages: [{role, content}], textDocument?: {uri},
  range?, maxTokens?, workDoneToken?}`` -> ``{text, stopReason, latencyMs,
  generatedTokens}``; the answer streams as ``$/progress`` reports (``message`` = the
  next piece of text) on ``workDoneToken``, or on a token the server creates when the
  client supports ``window.workDoneProgress``.
- ``llamacode/stats`` request -> latency percentiles, cache, prompt tokens evaluated and
  reused, acceptance, engine counters, model state, settings.
- ``workspace/executeCommand``: ``llamacode.accept [id]``, ``llamacode.acceptPartial [id,
  acceptedChars]``, ``llamacode.dismiss [id]`` (each inline item carries the accept
  command with its id); ``llamacode.explain`` / ``llamacode.fix`` / ``llamacode.docstring``
  ``[{textDocument: {uri}, range}]`` -> ``{text, edits: TextEdit[], edit: WorkspaceEdit}``.

Robustness (``lsp.transport``, :class:`lsp.server.LlamacodeProtocol`): frames with a
wrong, missing or oversized ``Content-Length`` are skipped and the stream resynchronizes
at the next header; a request that cannot be parsed gets InvalidParams/InvalidRequest
with its id; requests before ``initialize`` get ServerNotInitialized and requests after
``shutdown`` InvalidRequest. Files outside the workspace root and folders are neither
completed, used as extra context, nor accepted by chat or the commands.
"""
