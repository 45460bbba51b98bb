"""Collecting, deduplicating, splitting, tokenizing in parallel, sharding and packing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llamacode.runtime.errors import ConfigError
from llamacode.training.batches import IGNORE_INDEX, PackedWindows, WindowOrder
from llamacode.training.dedupe import dedupe
from llamacode.training.prepare import DataConfig, prepare_chat, prepare_code
from llamacode.training.shards import DataError, TokenStore, read_index
from llamacode.training.sources import collect

from .conftest import CORPUS


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_collect_by_language_skips_binary_vendored_and_other_languages(tmp_path: Path) -> None:
    _write(tmp_path, {"a.py": "x = 1\n", "b.rs": "fn main() {}\n", "node_modules/c.py": "y = 2\n"})
    (tmp_path / "d.py").write_bytes(b"\x00\x01binary")
    (tmp_path / "e.py").write_bytes(b"\xff\xfe not utf-8")
    found = {Path(d.path).name: d.language for d in collect([tmp_path], ["python", "rust"])}
    assert found == {"a.py": "python", "b.rs": "rust"}
    with pytest.raises(ConfigError, match="unknown language"):
        list(collect([tmp_path], ["cobol"]))


def test_dedupe_removes_exact_and_near_copies_keeps_distinct() -> None:
    base = (Path(CORPUS[0]) / "decoder.py").read_text()
    other = (Path(CORPUS[0]) / "encoder.py").read_text()
    reformatted = base.replace("    ", "\t")  # whitespace changes only: exact after collapse
    lines = base.splitlines()
    lines[20] = "# a one-line edit"
    near = "\n".join(lines)
    kept, stats = dedupe([base, other, reformatted, near, "tiny"])
    assert kept == [0, 1, 4]
    assert (stats.exact_duplicates, stats.near_duplicates) == (1, 1)


def test_prepare_writes_memmapped_shards_and_index(tmp_path: Path, tokenizer_path: Path) -> None:
    config = DataConfig(sources=CORPUS[:1], val_fraction=0.2, shard_tokens=5000, workers=1)
    index = prepare_code(config, tokenizer_path, tmp_path / "data")
    assert index == read_index(tmp_path / "data")
    train = index["splits"]["train"]
    assert len(train["shards"]) > 1 and index["splits"]["val"]["documents"] >= 1
    assert index["dtype"] == "uint16"
    store = TokenStore.open(tmp_path / "data", "train")
    assert len(store) == train["tokens"]
    # A read across a shard boundary equals the concatenation of the files.
    whole = np.concatenate(
        [np.fromfile(tmp_path / "data" / s["file"], np.uint16) for s in train["shards"]]
    )
    first = train["shards"][0]["tokens"]
    got, mask = store.read(first - 10, 30)
    assert mask is None and got.tolist() == whole[first - 10 : first + 20].tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_parallel_tokenization_matches_serial(tmp_path: Path, tokenizer_path: Path) -> None:
    files = {
        f"m{i}.py": f"def f{i}(x):\n    return x * {i} + {i * i}  # variant {i}\n"
        for i in range(80)
    }
    src = _write(tmp_path / "src", files)
    serial = prepare_code(DataConfig(sources=[str(src)], workers=1), tokenizer_path, tmp_path / "a")
    parallel = prepare_code(
        DataConfig(sources=[str(src)], workers=2), tokenizer_path, tmp_path / "b"
    )
    assert serial["splits"] == parallel["splits"]
    for shard in serial["splits"]["train"]["shards"]:
        assert (tmp_path / "a" / shard["file"]).read_bytes() == (
            tmp_path / "b" / shard["file"]
        ).read_bytes()


def test_failed_prepare_leaves_nothing_behind(tmp_path: Path, tokenizer_path: Path) -> None:
    with pytest.raises(DataError, match="no python files"):
        prepare_code(DataConfig(sources=[str(tmp_path)]), tokenizer_path, tmp_path / "out")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1"):
        prepare_chat(DataConfig(chat=[str(bad)]), tokenizer_path, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_packing_and_answer_only_loss_mask(tmp_path: Path, tokenizer_path: Path, tokenizer) -> None:
    chat = tmp_path / "chat.jsonl"
    records = [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(40)
    ]
    chat.write_text("".join(json.dumps(r) + "\n" for r in records))
    prepare_chat(DataConfig(chat=[str(chat)], val_fraction=0.1), tokenizer_path, tmp_path / "chat")
    windows = PackedWindows(TokenStore.open(tmp_path / "chat", "train"), 16)
    x, y = windows.get(np.arange(len(windows)))
    assert x.shape == (len(windows), 16)
    # Targets are the next tokens wherever the loss is taken.
    inner = y[:, :-1]
    assert bool(((inner == IGNORE_INDEX) | (inner == x[:, 1:])).all())
    assert bool((y != IGNORE_INDEX).any()) and bool((y == IGNORE_INDEX).any())
    flat_x, flat_y = x.flatten().tolist(), y.flatten().tolist()
    trained = tokenizer.decode([t for t in flat_y if t != IGNORE_INDEX])
    assert "answer" in trained and "question" not in trained and "[INST]" not in trained
    assert tokenizer.eos_id in flat_y and "question" in tokenizer.decode(flat_x)


def test_window_order_is_a_pure_function_of_step() -> None:
    order = WindowOrder(10, seed=3)
    first_epoch = np.concatenate([order.batch(s, 5) for s in range(2)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    assert WindowOrder(10, seed=3).batch(7, 5).tolist() == order.batch(7, 5).tolist()
    assert order.batch(2, 5).tolist() != first_epoch[:5].tolist()  # a new permutation per epoch
