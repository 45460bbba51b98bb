"""The byte-level BPE tokenizer read from a GGUF gives the ids llama.cpp gives.

Every comparison is against llama.cpp itself (the vocabulary-only load of the real catalog
models): Qwen2.5-Coder (pre-tokenizer "qwen2") and SmolLM2 ("smollm").
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamacode.runtime.catalog import QWEN_05B
from llamacode.runtime.models import catalog_path
from llamacode.training.bpe import ByteLevelBPE
from llamacode.training.pretokenizer import PreTokenizer, collapse_char
from llamacode.training.tokenizer import TokenizerError

REPO = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"])

SPECIAL_TEXTS = [
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<tool_call>",
    "</s>",
    "<file_sep>",
    "<repo_name>",
]

EDGE_CASES = [
    "",
    " ",
    "  ",
    "    \n",
    "\t\t\tx",
    "a  \t b",
    "x \n\n\n  y",
    "trailing   ",
    "line\r\nline\r\n",
    "\r\r\n\n \r",
    "1234567",
    "3.14159 and 1,000,000",
    "x1y22z333",
    "it's",
    "IT'S",
    "'S 'LL 'Re 'vE 'D 'M 'T",
    "don't'll've",
    "'",
    "''s",
    "Привет, мир",
    "こんにちは世界",
    "안녕하세요",
    "مرحبا بالعالم",
    "हिन्दी",
    "Ελληνικά",
    "emoji 🎉🚀👩‍💻 flag 🇫🇷",
    "e\u0301 a\u0308 combining marks",
    "\u00a0nbsp\u3000ideographic\u2028line\x85next",
    "\x00\x01\x1c\x1f controls",
    "\x04\x13 and \U00040000: bytes SmolLM2 has no token for",
    "\ufeffBOM",
    "zero\u200bwidth",
    # Letters of Unicode 16 and 17: llama.cpp's Unicode 15.1 tables do not know them.
    "\U0003d000 new \U000105c0\u0558 letters",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<|endoftext|>",
    "<tool_call>{}</tool_call>",
    "</s>",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|fim_prefix|<|fim_prefix|>>",
    "<file_sep>a.py\n<repo_name>r",
    "    def f(self):\n        return 1\n",
    "x" * 3000,
    " " * 2000 + "x",
    "-" * 5000,
]


@dataclass(frozen=True)
class Pair:
    """Our tokenizer and llama.cpp's, for the same GGUF."""

    ours: ByteLevelBPE
    llama: llama_cpp.Llama

    def check(self, text: str, *, special: bool) -> None:
        want = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        got = self.ours.encode(text, special=special)
        assert got == want, _first_difference(self.ours, got, want)
        if not set(text.encode("utf-8")) & self.ours.missing_bytes:
            assert self.ours.decode(got) == text


def _first_difference(tok: ByteLevelBPE, got: list[int], want: list[int]) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    at = min(len(got), len(want)) if at is None else at
    return (
        f"first difference at token {at}, after {tok.decode(want[max(0, at - 5) : at])!r}: "
        f"ours {got[at : at + 5]}, llama.cpp {want[at : at + 5]}"
    )


def _pair(path: Path) -> Pair:
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False, n_threads=1)
    return Pair(ByteLevelBPE.from_gguf(path), llama)


@pytest.fixture(scope="module")
def qwen() -> Pair:
    path = catalog_path(QWEN_05B)
    if not path.is_file():
        pytest.fail("run `llamacode models install qwen2.5-coder-0.5b` (make test does)")
    return _pair(path)


@pytest.fixture(scope="module")
def smollm(default_model: Path) -> Pair:
    return _pair(default_model)


@pytest.fixture(scope="module", params=["qwen", "smollm"])
def pair(request: pytest.FixtureRequest) -> Pair:
    return request.getfixturevalue(request.param)


def test_catalog_models_have_the_pre_tokenizers_proven_here(qwen: Pair, smollm: Pair):
    assert (qwen.ours.pre, smollm.ours.pre) == ("qwen2", "smollm")


@pytest.mark.parametrize("special", [False, True])
@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_get_llama_cpp_ids(pair: Pair, text: str, special: bool):
    pair.check(text, special=special)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(SPECIAL_TEXTS),
            st.sampled_from(["'S", "'ll", "  ", "\r\n", "\t", "1234", "\u00a0", "\x85"]),
        ),
        max_size=8,
    ).map("".join)
)
def test_random_text_gets_llama_cpp_ids(qwen: Pair, smollm: Pair, text: str):
    for pair in (qwen, smollm):
        for special in (False, True):
            pair.check(text, special=special)


def _corpus() -> dict[str, str]:
    """Every text file this repository tracks, and every 20th module of the standard library."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("the corpus is this repository's git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode("utf-8")
    files = [REPO / name for name in listing.split("\0") if name]
    library = sorted(
        f for f in STDLIB.rglob("*.py") if "site-packages" not in f.relative_to(STDLIB).parts
    )
    texts = {}
    for path in files + library[::20]:
        try:
            texts[str(path)] = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return texts


@pytest.mark.slow
@pytest.mark.parametrize("special", [False, True])
def test_repository_and_stdlib_get_llama_cpp_ids(pair: Pair, special: bool):
    corpus = _corpus()
    assert sum(len(t.encode("utf-8")) for t in corpus.values()) > 2_000_000
    for name, text in corpus.items():
        want = pair.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        got = pair.ours.encode(text, special=special)
        assert got == want, f"{name}: {_first_difference(pair.ours, got, want)}"
        if not set(text.encode("utf-8")) & pair.ours.missing_bytes:
            assert pair.ours.decode(got) == text, name


@pytest.mark.parametrize(
    ("pre", "text", "words"),
    [
        ("qwen2", "x = 1234567", ["x", " =", " ", *"1234567"]),
        ("qwen2", "IT'S", ["IT", "'S"]),
        ("qwen2", "\n\n    def", ["\n\n", "   ", " def"]),
        ("smollm", "IT'S x1", ["IT", "'", "S", " x", "1"]),
    ],
)
def test_words_are_cut_as_the_module_says(pre: str, text: str, words: list[str]):
    assert PreTokenizer(pre).split(text) == words


def test_unicode_classes_are_llama_cpps_for_every_code_point():
    """What counts as whitespace, letter and number is llama.cpp's own table."""
    try:
        flags = llama_cpp.llama_cpp._lib._Z26unicode_cpt_flags_from_cptj
    except AttributeError:
        pytest.skip("this libllama does not export unicode_cpt_flags_from_cpt")
    flags.restype = ctypes.c_uint16
    flags.argtypes = [ctypes.c_uint32]
    whitespace, letter, number = 0x100, 0x4, 0x2  # unicode_cpt_flags' bits
    wrong = []
    for code in range(0x80, 0x110000):
        bits = flags(code)
        category = bits & 0xFF
        want = (
            "\x0b"
            if bits & whitespace
            else "\xd2"
            if category == letter
            else "\xd1"
            if category == number
            else "\xd0"
        )
        if collapse_char(code) != want:
            wrong.append(hex(code))
    assert not wrong, wrong[:20]


def test_special_token_ids_come_from_the_gguf_and_no_bos_is_added(qwen: Pair):
    vocab = llama_cpp.llama_model_get_vocab(qwen.llama.model)
    assert qwen.ours.vocab_size == qwen.llama.n_vocab() == 151936
    assert qwen.ours.bos_id == llama_cpp.llama_vocab_bos(vocab) == 151643
    assert qwen.ours.eos_id == llama_cpp.llama_vocab_eos(vocab) == 151645
    assert qwen.ours.eot_id is None  # the GGUF names none; llama.cpp guesses one by its text
    assert qwen.ours.encode("x") == qwen.llama.tokenize(b"x", add_bos=True, special=False)
    assert qwen.ours.bos_id not in qwen.ours.encode("x")


def test_token_id_finds_special_and_ordinary_tokens(qwen: Pair):
    fim = qwen.llama.tokenize(b"<|fim_prefix|>", add_bos=False, special=True)
    assert [qwen.ours.token_id("<|fim_prefix|>")] == fim
    assert [qwen.ours.token_id(" def")] == qwen.ours.encode(" def")
    assert qwen.ours.token_id("no single token spells this") is None


def test_bytes_without_a_token_are_dropped_as_llama_cpp_drops_them(qwen: Pair, smollm: Pair):
    assert qwen.ours.missing_bytes == frozenset()
    assert {0x04, 0xF1} <= smollm.ours.missing_bytes
    smollm.check("a\x04b", special=False)
    assert smollm.ours.decode(smollm.ours.encode("a\x04b")) == "ab"


def test_unsupported_pre_tokenizer_is_named(starcoder_gguf: Path):
    with pytest.raises(TokenizerError, match="pre-tokenizer 'gpt-2'"):
        ByteLevelBPE.from_gguf(starcoder_gguf)


def test_sentencepiece_vocabulary_is_refused(codellama_gguf: Path):
    with pytest.raises(TokenizerError, match="'llama', not 'gpt2'"):
        ByteLevelBPE.from_gguf(codellama_gguf)
