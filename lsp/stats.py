"""Counters behind ``llamacode/stats``: latency, cache, prompt reuse and acceptance.

Everything here runs on the event loop thread; no locking needed.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux), None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


@dataclass
class ServerStats:
    """What happened to completion requests since the server started."""

    requests: int = 0
    answered_empty: int = 0
    superseded: int = 0  # a newer request or an edit made it obsolete
    client_cancelled: int = 0
    not_ready: int = 0
    outside_workspace: int = 0  # documents outside the workspace folders: never completed
    errors: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    model_runs: int = 0  # generations that evaluated a prompt
    model_cancelled_before_start: int = 0
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    dismissed: int = 0
    chats: int = 0
    warmed: int = 0  # idle-time prompt evaluations that filled the KV cache
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    model_latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    evaluated_per_run: deque[int] = field(default_factory=lambda: deque(maxlen=2000))

    def record_generation(self, generation: Any) -> None:
        """Fold one engine Generation into the counters."""
        if generation.stop_reason == "cancelled" and generation.evaluated_tokens == 0:
            self.model_cancelled_before_start += 1
            return
        self.model_runs += 1
        self.prompt_tokens += generation.prompt_tokens
        self.evaluated_tokens += generation.evaluated_tokens
        self.reused_tokens += generation.reused_tokens
        self.generated_tokens += generation.generated_tokens
        self.model_latencies_ms.append(generation.elapsed_s * 1000.0)
        self.evaluated_per_run.append(generation.evaluated_tokens)

    def as_dict(self, engine_stats: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer of ``llamacode/stats``."""
        lat = list(self.latencies_ms)
        model = list(self.model_latencies_ms)
        lookups = self.cache_hits + self.cache_misses
        decided = self.accepted + self.partially_accepted + self.dismissed
        return {
            "requests": self.requests,
            "answered_empty": self.answered_empty,
            "superseded": self.superseded,
            "client_cancelled": self.client_cancelled,
            "not_ready": self.not_ready,
            "outside_workspace": self.outside_workspace,
            "errors": self.errors,
            "latency_ms": {
                "p50": percentile(lat, 50),
                "p90": percentile(lat, 90),
                "p95": percentile(lat, 95),
                "p99": percentile(lat, 99),
                "count": len(lat),
            },
            "model_latency_ms": {"p50": percentile(model, 50), "p95": percentile(model, 95)},
            "cache": {
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "hit_rate": self.cache_hits / lookups if lookups else None,
            },
            "model": {
                "runs": self.model_runs,
                "cancelled_before_start": self.model_cancelled_before_start,
                "prompt_tokens": self.prompt_tokens,
                "evaluated_tokens": self.evaluated_tokens,
                "reused_tokens": self.reused_tokens,
                "generated_tokens": self.generated_tokens,
                "evaluated_per_run_p50": percentile([float(v) for v in self.evaluated_per_run], 50),
                "reuse_rate": self.reused_tokens / self.prompt_tokens
                if self.prompt_tokens
                else None,
            },
            "acceptance": {
                "shown": self.shown,
                "accepted": self.accepted,
                "partially_accepted": self.partially_accepted,
                "dismissed": self.dismissed,
                "rate": (self.accepted + self.partially_accepted) / decided if decided else None,
            },
            "chats": self.chats,
            "warmed": self.warmed,
            "engine": engine_stats,
            "process": {"rss_bytes": rss_bytes(), "torch_loaded": "torch" in sys.modules},
        }
