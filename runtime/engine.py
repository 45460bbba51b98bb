"""The engine: one GGUF model in llama.cpp, serving completion, infill and chat.

Prompts are built as token ids (never llama-cpp-python's ``suffix=`` path, which sends id 0
for the FIM tokens). Consecutive requests reuse the KV cache for their longest common token
prefix (and, when configured, for chunks past the first difference, shifted into place),
and every request reports how many prompt tokens it evaluated and how many it reused.
Access to the model is serialized by a lock; llama.cpp releases the GIL, so the language
server calls the engine from a worker thread and its event loop stays free.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from llamacode.runtime.adapter import AdapterFacts, fit_adapter
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.context import LineTokenCounter, comment_block
from llamacode.runtime.errors import ConfigError, LlamacodeError
from llamacode.runtime.fim import FimMode, prefix_only_layout
from llamacode.runtime.infill_prompt import infill_ids
from llamacode.runtime.kv_reuse import ReusePlan, plan_reuse, shift_order
from llamacode.runtime.loader import LoadPlan, load_llama
from llamacode.runtime.model_facts import ModelFacts, read_facts
from llamacode.runtime.probe import probe_model
from llamacode.runtime.sampling import Sampler
from llamacode.runtime.stops import stop_string_cut
from llamacode.runtime.template import CHATML_TEMPLATE, LLAMA2_TEMPLATE, render_chat
from llamacode.runtime.types import CancelToken, ContextFile, EngineStats, Generation

log = logging.getLogger("llamacode.runtime")

# A rule that ends generated text early: given the text so far and whether generation has
# finished, the index to cut at and why, or None.
Cut = Callable[[str, bool], tuple[int, str] | None]

# The sequence that holds reused chunks while the tokens before them are evaluated: llama.cpp
# only accepts a batch for a sequence right after that sequence's last cached position.
_PARKED_SEQ = 1

# Prepended to text that must be tokenized without sentencepiece's implicit leading space
# (Code Llama's reference does the same with this character), then cut off again.
_NOSPACE_SENTINELS = ("☺", "\u2063", "§")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class _Decoder:
    """Incremental detokenization: bytes per token, UTF-8 decoded as it completes."""

    piece: Callable[[int], bytes]
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    def push(self, token: int) -> str:
        return self.decoder.decode(self.piece(token))

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)


class Engine:
    """A loaded model. Build it with :meth:`load`."""

    def __init__(
        self,
        llm: Any,
        facts: ModelFacts,
        config: EngineConfig,
        plan: LoadPlan,
        adapter: AdapterFacts | None = None,
    ) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._llm = llm
        self.facts = facts
        self.adapter = adapter  # the LoRA adapter applied, if any
        self.config = config
        self.plan = plan
        self.n_ctx: int = llm.n_ctx()
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacode-engine")
        self._vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        fim_eot = facts.fim.eot if facts.fim else None
        self._eot_ids = {t for t in (facts.eot, fim_eot) if t is not None}
        self._stop_ids = self._eot_ids | ({facts.eos} if facts.eos is not None else set())
        self._nospace = self._find_nospace_sentinel()
        self._said_prefix_only = False
        # Per-line token counts, remembered: a keystroke re-tokenizes one line.
        self.count_line = LineTokenCounter(self.count_tokens)

    @classmethod
    def load(cls, path: str | Path, config: EngineConfig | None = None) -> Engine:
        """Check the file (and the adapter against it), choose settings from its metadata
        and the machine, load it."""
        config = config or EngineConfig()
        facts = read_facts(path)
        adapter = None
        if config.adapter_path:
            adapter = fit_adapter(config.adapter_path, facts.path)
        if config.isolate_load:
            probe_model(facts.path, config.adapter_path, config.adapter_scale)
        llm, plan = load_llama(facts, config)
        return cls(llm, facts, config, plan, adapter)

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=False)
            self._llm.close()

    # Tokens ---------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids for ``text`` as the start of a sequence (sentencepiece adds its space)."""
        if not text:
            return []
        return self._llm.tokenize(_utf8(text), add_bos=False, special=special)

    def tokenize_nospace(self, text: str) -> list[int]:
        """Token ids for ``text`` that continues a sequence (no implicit leading space)."""
        if not text or self._nospace is None:
            return self.tokenize(text)
        sentinel, n = self._nospace
        ids = self.tokenize(sentinel + text)
        if ids[:n] == self.tokenize(sentinel) and self.detokenize(ids[n:]) == text:
            return ids[n:]
        return self.tokenize(text)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def detokenize(self, ids: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in ids).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self._llama_cpp.llama_token_to_piece(
                self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False
            )
            piece = self._piece_buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def _find_nospace_sentinel(self) -> tuple[str, int] | None:
        if not self.facts.add_space_prefix:
            return None
        for sentinel in _NOSPACE_SENTINELS:
            n = len(self.tokenize(sentinel))
            if self.tokenize(sentinel + "x")[:n] == self.tokenize(sentinel):
                return sentinel, n
        return None

    # Requests -------------------------------------------------------------------------

    def complete(
        self,
        prefix: str,
        config: GenerationConfig | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Continue ``prefix``."""
        config = config or GenerationConfig()
        budget = self._prompt_budget(config, reserve=1)
        ids = prefix_only_layout(self.tokenize(prefix)[-budget:], self._bos())
        return self._generate(ids or self._start_ids(), config, cancel, on_text, "completion", None)

    def infill(
        self,
        prefix: str,
        suffix: str,
        context: Sequence[ContextFile] = (),
        config: GenerationConfig | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """The model's raw middle between ``prefix`` and ``suffix`` (prefix-only without FIM
        tokens), ended only by control tokens, stop strings and limits. Editors, the CLI and
        the evaluations use :func:`runtime.suggest.suggest`, which adds the trim rules."""
        config = config or GenerationConfig()
        ids, mode = self.infill_prompt(prefix, suffix, context, config)
        return self._generate(ids, config, cancel, on_text, mode, None)

    def generate(
        self,
        ids: list[int],
        config: GenerationConfig | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
        *,
        cut: Cut | None = None,
        mode: str = "ids",
    ) -> Generation:
        """Continue the prompt ``ids``; ``cut(text, final)`` may end the text early."""
        return self._generate(ids, config or GenerationConfig(), cancel, on_text, mode, cut)

    def infill_prompt(
        self,
        prefix: str,
        suffix: str,
        context: Sequence[ContextFile] = (),
        config: GenerationConfig | None = None,
        path: str = "",
    ) -> tuple[list[int], str]:
        """The prompt ids for an infill request, and its layout ("psm", "spm", "prefix-only").

        ``context`` (pieces of other files) goes first, so it stays at the prompt's stable
        start: in the model's repository-level form when its vocabulary has one (``path``
        names the file being edited there), else as comment-headed code before the prefix.
        Too long a prompt keeps the end of the prefix and the start of the suffix
        (:func:`runtime.infill_prompt.infill_ids`, which tuning builds its examples with).
        """
        config = config or GenerationConfig()
        fim = self.facts.fim
        if fim is None:
            head = "".join(comment_block(c) for c in context)
            if not self._said_prefix_only:
                log.info(
                    "%s has no FIM tokens: infill completes from the prefix only", self.facts.name
                )
                self._said_prefix_only = True
            budget = self._prompt_budget(config, reserve=1)
            ids = prefix_only_layout(self.tokenize(head + prefix)[-budget:], self._bos())
            return ids or self._start_ids(), "prefix-only"
        mode = config.fim_mode or self.facts.default_fim_mode or FimMode.PSM
        if mode not in fim.modes:
            raise ConfigError(
                f"{self.facts.name} was not trained with {mode.value.upper()} infilling; "
                f"use one of: {', '.join(m.value for m in fim.modes)}"
            )
        ids = infill_ids(
            fim,
            self.tokenize,
            self.tokenize_nospace,
            prefix,
            suffix,
            context=context,
            path=path,
            mode=mode,
            budget=self._prompt_budget(config, reserve=4),
        )
        return ids, mode.value

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        config: GenerationConfig | None = None,
        cancel: CancelToken | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Answer the last user message of a conversation (roles: system, user, assistant)."""
        config = config or GenerationConfig(max_tokens=512)
        messages = [dict(m) for m in messages]
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant") or not isinstance(
                m.get("content"), str
            ):
                raise ConfigError(
                    "each chat message needs a role (system, user or assistant) and text content"
                )
        budget = self._prompt_budget(config, reserve=0)
        while True:
            ids = self._chat_ids(messages)
            if len(ids) <= budget:
                break
            droppable = [i for i, m in enumerate(messages[:-1]) if m["role"] != "system"]
            if not droppable:
                raise ConfigError(
                    f"the conversation ({len(ids)} tokens) does not fit the context of "
                    f"{self.n_ctx} tokens; shorten it or load the model with a larger --ctx"
                )
            del messages[droppable[0]]
        return self._generate(ids, config, cancel, on_text, "chat", None)

    async def acomplete(self, prefix: str, **kwargs: Any) -> Generation:
        return await self._run(partial(self.complete, prefix, **kwargs))

    async def ainfill(self, prefix: str, suffix: str, **kwargs: Any) -> Generation:
        return await self._run(partial(self.infill, prefix, suffix, **kwargs))

    async def achat(self, messages: Sequence[Mapping[str, str]], **kwargs: Any) -> Generation:
        return await self._run(partial(self.chat, messages, **kwargs))

    async def _run(self, call: Callable[[], Generation]) -> Generation:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _bos(self) -> int | None:
        return self.facts.bos if self.facts.add_bos else None

    def _start_ids(self) -> list[int]:
        """The prompt for an empty prefix: llama.cpp has no logits to sample after no tokens."""
        start = self.facts.bos if self.facts.bos is not None else self.facts.eos
        if start is None:
            raise ConfigError(f"{self.facts.name} needs some text before the cursor to continue")
        return [start]

    def _prompt_budget(self, config: GenerationConfig, reserve: int) -> int:
        budget = self.n_ctx - min(config.max_tokens, self.n_ctx // 2) - reserve
        if budget <= 0:
            raise ConfigError(f"a context of {self.n_ctx} tokens leaves no room for a prompt")
        return budget

    def _chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        template = self.facts.chat_template or self._fallback_template()
        text = render_chat(
            template,
            messages,
            bos_token=_token_text(self._llm, self.facts.bos),
            eos_token=_token_text(self._llm, self.facts.eos),
        )
        ids = self.tokenize(text, special=True)
        bos = self._bos()
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        return ids

    def _fallback_template(self) -> str:
        im_start = self.tokenize("<|im_start|>", special=True)
        return CHATML_TEMPLATE if len(im_start) == 1 else LLAMA2_TEMPLATE

    # The generation loop --------------------------------------------------------------

    def _generate(
        self,
        ids: list[int],
        config: GenerationConfig,
        cancel: CancelToken | None,
        on_text: Callable[[str], None] | None,
        mode: str,
        cut: Cut | None,
    ) -> Generation:
        with self._lock:
            self.stats.requests += 1
            if cancel is not None and cancel.cancelled:
                self.stats.cancelled_before_start += 1
                self.stats.cancelled += 1
                return Generation("", "cancelled", prompt_tokens=len(ids), prompt_mode=mode)
            try:
                result = self._run_locked(ids, config, cancel, on_text, mode, cut)
            except LlamacodeError:
                raise
            except RuntimeError as exc:
                # llama.cpp's decode failures surface as RuntimeError; the cache is suspect.
                self._llm.n_tokens = 0
                raise LlamacodeError(f"llama.cpp failed while generating: {exc}") from exc
            s = self.stats
            s.prompt_tokens += result.prompt_tokens
            s.evaluated_tokens += result.evaluated_tokens
            s.reused_tokens += result.reused_tokens
            s.generated_tokens += result.generated_tokens
            s.generation_s += result.elapsed_s
            s.cancelled += result.stop_reason == "cancelled"
            return result

    def _run_locked(
        self,
        ids: list[int],
        config: GenerationConfig,
        cancel: CancelToken | None,
        on_text: Callable[[str], None] | None,
        mode: str,
        cut_rule: Cut | None,
    ) -> Generation:
        start = time.monotonic()
        deadline = start + config.time_budget_s if config.time_budget_s else None
        llm = self._llm
        reused, evaluated = self._eval_prompt(ids, cancel)
        if reused + evaluated < len(ids):
            return Generation(
                "",
                "cancelled",
                len(ids),
                evaluated,
                reused,
                0,
                0.0,
                time.monotonic() - start,
                mode,
            )

        sampler = Sampler(config.temperature, config.top_k, config.top_p, config.seed)
        decoder = _Decoder(self._piece)
        text = ""
        emitted = 0
        generated = 0
        ttft = 0.0
        reason = "max_tokens"
        was_cut = False
        hold = max((len(s) for s in config.stop), default=1) - 1
        while generated < config.max_tokens:
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
                break
            if deadline is not None and time.monotonic() > deadline:
                reason = "time"
                break
            token = sampler(self._last_logits())
            if generated == 0:
                ttft = time.monotonic() - start
            generated += 1
            if token in self._stop_ids or self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                reason = "eot" if token in self._eot_ids else "eos"
                break
            if self._llama_cpp.llama_vocab_is_control(self._vocab, token):
                reason = "control"  # e.g. <|fim_prefix|> or <|im_start|>: a new section
                break
            text += decoder.push(token)
            cut, why = self._cut(text, config, cut_rule, final=False)
            if cut is not None:
                text, reason, was_cut = text[:cut], why, True
                break
            safe = len(text) - hold
            if cut_rule is not None:
                # The last line may yet be cut (a dedent, a fence, the suffix's next line).
                safe = min(safe, max(text.rfind("\n"), 0))
            if on_text is not None and safe > emitted:
                on_text(text[emitted:safe])
                emitted = safe
            if llm.n_tokens >= self.n_ctx:
                reason = "context"
                break
            self._eval_at([token], llm.n_tokens, outputs=1)
        if not was_cut:
            text += decoder.flush()
            cut, why = self._cut(text, config, cut_rule, final=True)
            if cut is not None:
                text, reason = text[:cut], why
        if on_text is not None and len(text) > emitted:
            on_text(text[emitted:])
        return Generation(
            text,
            reason,
            len(ids),
            evaluated,
            reused,
            generated,
            ttft,
            time.monotonic() - start,
            mode,
        )

    def _cut(
        self, text: str, config: GenerationConfig, rule: Cut | None, final: bool
    ) -> tuple[int | None, str]:
        cuts: list[tuple[int, str]] = []
        stop = stop_string_cut(text, config.stop)
        if stop is not None:
            cuts.append((stop, "stop"))
        if rule is not None:
            found = rule(text, final)
            if found is not None:
                cuts.append(found)
        return min(cuts) if cuts else (None, "")

    def _eval_prompt(self, ids: list[int], cancel: CancelToken | None) -> tuple[int, int]:
        """Bring the KV cache to ``ids``; return (tokens reused, tokens evaluated).

        Reused chunks wait in a side sequence while the tokens before each are evaluated,
        then join the prompt's sequence. Fewer than ``len(ids)`` in all means cancelled.
        """
        llm = self._llm
        lc = self._llama_cpp
        plan = self._reuse_prefix(ids)
        pending = list(plan.chunks)
        reused, evaluated = plan.prefix, 0
        try:
            for start, end in plan.gaps():
                while pending and pending[0].prompt < start:
                    chunk = pending.pop(0)
                    stop = chunk.prompt + chunk.length
                    lc.llama_memory_seq_cp(self._memory(), _PARKED_SEQ, 0, chunk.prompt, stop)
                    llm.input_ids[chunk.prompt : stop] = ids[chunk.prompt : stop]
                    llm.n_tokens = stop
                    reused += chunk.length
                for i in range(start, end, llm.n_batch):
                    if cancel is not None and cancel.cancelled:
                        return reused, evaluated
                    batch = ids[i : min(i + llm.n_batch, end)]
                    self._eval_at(batch, i, outputs=1 if i + len(batch) == len(ids) else 0)
                    evaluated += len(batch)
        finally:
            lc.llama_memory_seq_rm(self._memory(), _PARKED_SEQ, -1, -1)
        return reused, evaluated

    def _reuse_prefix(self, ids: list[int]) -> ReusePlan:
        """Keep the cached tokens ``ids`` shares: the common prefix in place, later chunks
        (``cache_reuse_min_chunk``) parked, already shifted to their new positions."""
        llm = self._llm
        lc = self._llama_cpp
        memory = self._memory()
        min_chunk = self.config.cache_reuse_min_chunk
        if min_chunk > 0 and not lc.llama_memory_can_shift(memory):
            min_chunk = 0
        plan = plan_reuse(llm.input_ids[: llm.n_tokens].tolist(), ids, min_chunk)
        for chunk in plan.chunks:
            end = chunk.cached + chunk.length
            lc.llama_memory_seq_cp(memory, 0, _PARKED_SEQ, chunk.cached, end)
        lc.llama_memory_seq_rm(memory, 0, plan.prefix, -1)
        for chunk in shift_order(plan.chunks):
            end = chunk.cached + chunk.length
            lc.llama_memory_seq_add(memory, _PARKED_SEQ, chunk.cached, end, chunk.shift)
        llm.n_tokens = plan.prefix
        return plan

    def _eval_at(self, tokens: Sequence[int], pos: int, outputs: int) -> None:
        """Evaluate ``tokens`` at positions ``pos..``, with logits for the last ``outputs``."""
        llm = self._llm
        batch = llm._batch.batch
        n = len(tokens)
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i >= n - outputs
        status = self._llama_cpp.llama_decode(llm._ctx.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        llm.input_ids[pos : pos + n] = tokens
        llm.n_tokens = pos + n

    def _memory(self) -> Any:
        return self._llama_cpp.llama_get_memory(self._llm._ctx.ctx)

    def _last_logits(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; lone UTF-16 surrogates (from JSON escapes) become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def _token_text(llm: Any, token: int | None) -> str:
    if token is None:
        return ""
    text = llm._model.token_get_text(token)
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
