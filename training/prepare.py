"""Data preparation: sources -> dedupe -> held-out split -> FIM + tokens -> shards.

Tokenization (and the FIM transform) runs in a pool of worker processes. Each document
draws its FIM decisions from a generator seeded by its own content, so the output does
not depend on the number of workers or on scheduling. The split is decided by a hash of
the content too, after deduplication, so near-copies cannot straddle train and
validation. The directory is written beside its destination and moved into place at the
end: an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from llamacode.training.chat import ChatFormatError, check_dialog, encode_dialog
from llamacode.training.dedupe import dedupe
from llamacode.training.fim import transform_document
from llamacode.training.shards import DataError, ShardWriter, token_dtype, write_index
from llamacode.training.sources import collect
from llamacode.training.tokenizer import Tokenizer


@dataclass
class DataConfig:
    """Where the corpus comes from and how it becomes training tokens."""

    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=lambda: ["python"])
    chat: list[str] = field(default_factory=list)
    dir: str = "out/data"
    val_fraction: float = 0.05
    fim_rate: float = 0.9
    fim_spm_rate: float = 0.5
    dedupe_threshold: float = 0.85
    max_file_bytes: int = 1_000_000
    shard_tokens: int = 1 << 24
    workers: int = 0
    seed: int = 0


def _unit_hash(text: str, salt: bytes) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "little") / 2**64


def split_documents(texts: Sequence[str], val_fraction: float) -> tuple[list[int], list[int]]:
    """Train and validation indices by content hash; each split gets at least one document."""
    scores = [_unit_hash(t, b"split") for t in texts]
    val = [i for i, s in enumerate(scores) if s < val_fraction]
    if val_fraction > 0 and not val and len(texts) > 1:
        val = [min(range(len(texts)), key=scores.__getitem__)]
    val_set = set(val)
    train = [i for i in range(len(texts)) if i not in val_set]
    return train, val


# Worker-process state: the tokenizer is loaded once per worker.
_WORKER: dict[str, Any] = {}


def _init_worker(model_proto: bytes, fim_rate: float, spm_rate: float, seed: int) -> None:
    _WORKER.update(tok=Tokenizer(model_proto), fim_rate=fim_rate, spm_rate=spm_rate, seed=seed)


def _tokenize_code(text: str) -> np.ndarray:
    tok: Tokenizer = _WORKER["tok"]
    salt = _WORKER["seed"].to_bytes(8, "little")
    seed = int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8, key=salt).digest(), "little"
    )
    ids = transform_document(
        tok, text, random.Random(seed), fim_rate=_WORKER["fim_rate"], spm_rate=_WORKER["spm_rate"]
    )
    return np.asarray(ids, dtype=np.int64)


def _map(
    func: Any, items: Sequence[Any], init_args: tuple[Any, ...], workers: int, desc: str
) -> Iterator[Any]:
    """``func`` over items in order, in worker processes when there are enough items."""
    workers = workers or (os.cpu_count() or 1)
    bar = tqdm(total=len(items), desc=desc, unit="doc", leave=False, dynamic_ncols=True)
    with bar:
        if workers <= 1 or len(items) < 64:
            _init_worker(*init_args)
            for item in items:
                yield func(item)
                bar.update()
            return
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
            for result in pool.imap(func, items, chunksize=16):
                yield result
                bar.update()


def prepare_code(config: DataConfig, tokenizer_path: str | Path, out_dir: str | Path) -> dict:
    """Build a pretraining data directory from ``config.sources``; returns its index."""
    if not config.sources:
        raise DataError("no source directories given: set data.sources")
    docs = list(collect(config.sources, config.languages, max_bytes=config.max_file_bytes))
    if not docs:
        raise DataError(
            f"no {'/'.join(config.languages)} files found under {', '.join(config.sources)}"
        )
    texts = [d.text for d in docs]
    kept, stats = dedupe(texts, threshold=config.dedupe_threshold)
    texts = [texts[i] for i in kept]
    train, val = split_documents(texts, config.val_fraction)
    tok = Tokenizer.load(tokenizer_path)
    init = (tok.model_proto, config.fim_rate, config.fim_spm_rate, config.seed)
    extra = {
        "kind": "code",
        "files": len(docs),
        "exact_duplicates": stats.exact_duplicates,
        "near_duplicates": stats.near_duplicates,
        "fim": {"rate": config.fim_rate, "spm_rate": config.fim_spm_rate, "seed": config.seed},
    }

    def produce(indices: list[int], split: str) -> Iterable[tuple[np.ndarray, None]]:
        items = [texts[i] for i in indices]
        for ids in _map(_tokenize_code, items, init, config.workers, f"tokenize {split}"):
            yield ids, None

    return _write_dataset(out_dir, tok, config, {"train": train, "val": val}, produce, extra)


def _tokenize_chat(line: str) -> tuple[np.ndarray, np.ndarray]:
    record = json.loads(line)
    ids, mask = encode_dialog(_WORKER["tok"], record["messages"])
    return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=np.uint8)


def read_chat_jsonl(paths: Iterable[str | Path]) -> list[str]:
    """Validated JSONL lines of ``{"messages": [...]}`` records (bad lines are an error)."""
    lines = []
    for path in paths:
        try:
            content = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read chat data {path}: {exc.strerror}") from exc
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                messages = record["messages"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{path}:{number}: expected a JSON object with a 'messages' list"
                ) from exc
            try:
                check_dialog(messages)
            except ChatFormatError as exc:
                raise DataError(f"{path}:{number}: {exc}") from exc
            lines.append(line)
    if not lines:
        raise DataError("no chat records found: give JSONL files of {'messages': [...]} lines")
    return lines


def prepare_chat(config: DataConfig, tokenizer_path: str | Path, out_dir: str | Path) -> dict:
    """Build an instruction-tuning data directory from ``config.chat`` JSONL files."""
    lines = read_chat_jsonl(config.chat)
    kept, stats = dedupe(lines, threshold=config.dedupe_threshold)
    lines = [lines[i] for i in kept]
    train, val = split_documents(lines, config.val_fraction)
    tok = Tokenizer.load(tokenizer_path)
    init = (tok.model_proto, 0.0, 0.0, config.seed)
    extra = {
        "kind": "chat",
        "files": len(config.chat),
        "exact_duplicates": stats.exact_duplicates,
        "near_duplicates": stats.near_duplicates,
    }

    def produce(indices: list[int], split: str) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        items = [lines[i] for i in indices]
        yield from _map(_tokenize_chat, items, init, config.workers, f"tokenize {split}")

    return _write_dataset(out_dir, tok, config, {"train": train, "val": val}, produce, extra)


def _write_dataset(
    out_dir: str | Path,
    tok: Tokenizer,
    config: DataConfig,
    splits: dict[str, list[int]],
    produce: Any,
    extra: dict[str, Any],
) -> dict:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        dtype = token_dtype(tok.vocab_size)
        with_mask = extra["kind"] == "chat"
        split_info = {}
        for split, indices in splits.items():
            writer = ShardWriter(tmp, split, dtype, config.shard_tokens, with_mask)
            for ids, mask in produce(indices, split):
                writer.add(ids, mask)
            split_info[split] = writer.finish()
        index = {
            **extra,
            "dtype": dtype.name,
            "vocab_size": tok.vocab_size,
            "tokenizer_sha256": tok.sha256,
            "splits": split_info,
        }
        index = write_index(tmp, index)
        (tmp / "tokenizer.model").write_bytes(tok.model_proto)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


def _replace_dir(new: Path, dest: Path) -> None:
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, dest)
