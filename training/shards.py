"""Memory-mapped token shards and their JSON index.

A prepared data directory holds, per split, raw little-endian token files
(``train-00000.bin``; uint16 when the vocabulary fits, else uint32), optionally a parallel
uint8 loss-mask file per shard (instruction data: 1 where the loss is taken), and
``index.json`` describing them. Readers memory-map the files, so a corpus larger than
memory trains without being loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llamacode.runtime.errors import LlamacodeError

INDEX_FORMAT = "llamacode-tokens"
INDEX_VERSION = 1


class DataError(LlamacodeError):
    """Prepared data that is missing, malformed, or made for another tokenizer."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class ShardWriter:
    """Appends documents' tokens (and masks) to shards of about ``shard_tokens`` tokens."""

    def __init__(
        self, out_dir: Path, split: str, dtype: np.dtype, shard_tokens: int, with_mask: bool
    ) -> None:
        self.out_dir = out_dir
        self.split = split
        self.dtype = dtype
        self.shard_tokens = shard_tokens
        self.with_mask = with_mask
        self.shards: list[dict[str, Any]] = []
        self.documents = 0
        self._tokens: Any = None
        self._masks: Any = None
        self._count = 0

    def add(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> None:
        if self._tokens is None:
            self._open()
        self._tokens.write(np.asarray(tokens, dtype=self.dtype).tobytes())
        if self.with_mask:
            if mask is None or len(mask) != len(tokens):
                raise ValueError("masked shards need one mask value per token")
            self._masks.write(np.asarray(mask, dtype=np.uint8).tobytes())
        self._count += len(tokens)
        self.documents += 1
        if self._count >= self.shard_tokens:
            self._close()

    def finish(self) -> dict[str, Any]:
        if self._tokens is not None:
            self._close()
        return {
            "documents": self.documents,
            "tokens": sum(s["tokens"] for s in self.shards),
            "shards": self.shards,
        }

    def _open(self) -> None:
        name = f"{self.split}-{len(self.shards):05d}"
        self._entry: dict[str, Any] = {"file": f"{name}.bin"}
        self._tokens = open(self.out_dir / f"{name}.bin", "wb")  # noqa: SIM115
        if self.with_mask:
            self._entry["mask_file"] = f"{name}.mask"
            self._masks = open(self.out_dir / f"{name}.mask", "wb")  # noqa: SIM115
        self._count = 0

    def _close(self) -> None:
        self._tokens.close()
        self._tokens = None
        if self._masks is not None:
            self._masks.close()
            self._masks = None
        self._entry["tokens"] = self._count
        self.shards.append(self._entry)


def write_index(out_dir: Path, index: dict[str, Any]) -> dict[str, Any]:
    body = {"format": INDEX_FORMAT, "format_version": INDEX_VERSION, **index}
    (out_dir / "index.json").write_text(json.dumps(body, indent=2) + "\n")
    return body


def read_index(data_dir: str | Path) -> dict[str, Any]:
    path = Path(data_dir) / "index.json"
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(
            f"no prepared data at {data_dir} (index.json missing); run `llamacode data prepare`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from exc
    if index.get("format") != INDEX_FORMAT or index.get("format_version") != INDEX_VERSION:
        raise DataError(f"{path} is not a llamacode token index (version {INDEX_VERSION})")
    return index


@dataclass
class TokenStore:
    """One split's shards as a single read-only token sequence (plus loss mask)."""

    tokens: list[np.ndarray]
    masks: list[np.ndarray] | None
    offsets: np.ndarray  # start of each shard in the concatenation, plus the total

    @classmethod
    def open(cls, data_dir: str | Path, split: str) -> TokenStore:
        data_dir = Path(data_dir)
        index = read_index(data_dir)
        if split not in index["splits"]:
            raise DataError(f"{data_dir} has no {split!r} split")
        dtype = np.dtype(index["dtype"])
        tokens, masks = [], []
        for shard in index["splits"][split]["shards"]:
            if shard["tokens"] == 0:
                continue
            tokens.append(np.memmap(data_dir / shard["file"], dtype=dtype, mode="r"))
            if len(tokens[-1]) != shard["tokens"]:
                raise DataError(f"{shard['file']} is truncated: prepare the data again")
            if "mask_file" in shard:
                masks.append(np.memmap(data_dir / shard["mask_file"], dtype=np.uint8, mode="r"))
        lengths = [len(t) for t in tokens]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(tokens, masks if masks else None, offsets)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Tokens [start, start+length) across shard boundaries, as int64 (and the mask)."""
        out = np.empty(length, dtype=np.int64)
        mask = np.empty(length, dtype=np.uint8) if self.masks is not None else None
        pos, filled = start, 0
        shard = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while filled < length:
            local = pos - int(self.offsets[shard])
            take = min(length - filled, len(self.tokens[shard]) - local)
            out[filled : filled + take] = self.tokens[shard][local : local + take]
            if mask is not None and self.masks is not None:
                mask[filled : filled + take] = self.masks[shard][local : local + take]
            filled += take
            pos += take
            shard += 1
        return out, mask
