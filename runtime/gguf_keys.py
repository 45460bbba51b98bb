"""The GGUF metadata keys llamacode reads and writes, named as gguf-py's ``Keys`` names them.

These are the same strings as ``gguf.constants.Keys`` (tests/runtime/test_gguf_keys.py
asserts it), spelled here because ``import gguf`` loads numpy and the whole writer (about
0.15 s), and the language server reads GGUF headers without either. Code that already
imports gguf may use either table; nothing spells a key by hand.

Keys that start with ``{arch}`` belong to an architecture: ``Keys.LLM.CONTEXT_LENGTH.format(
arch="llama")`` is ``llama.context_length``.
"""

from __future__ import annotations

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32
# gguf.constants.MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA]: the one architecture convert handles.
LLAMA_ARCH = "llama"


class Keys:
    """Metadata keys, grouped as in gguf-py."""

    class General:
        TYPE = "general.type"
        ARCHITECTURE = "general.architecture"
        QUANTIZATION_VERSION = "general.quantization_version"
        ALIGNMENT = "general.alignment"
        FILE_TYPE = "general.file_type"
        NAME = "general.name"

    class LLM:
        VOCAB_SIZE = "{arch}.vocab_size"
        CONTEXT_LENGTH = "{arch}.context_length"
        EMBEDDING_LENGTH = "{arch}.embedding_length"
        BLOCK_COUNT = "{arch}.block_count"
        FEED_FORWARD_LENGTH = "{arch}.feed_forward_length"

    class Attention:
        HEAD_COUNT = "{arch}.attention.head_count"
        HEAD_COUNT_KV = "{arch}.attention.head_count_kv"
        KEY_LENGTH = "{arch}.attention.key_length"
        LAYERNORM_RMS_EPS = "{arch}.attention.layer_norm_rms_epsilon"

    class Rope:
        DIMENSION_COUNT = "{arch}.rope.dimension_count"
        FREQ_BASE = "{arch}.rope.freq_base"
        SCALING_TYPE = "{arch}.rope.scaling.type"

    class Tokenizer:
        MODEL = "tokenizer.ggml.model"
        PRE = "tokenizer.ggml.pre"
        LIST = "tokenizer.ggml.tokens"
        TOKEN_TYPE = "tokenizer.ggml.token_type"
        SCORES = "tokenizer.ggml.scores"
        MERGES = "tokenizer.ggml.merges"
        BOS_ID = "tokenizer.ggml.bos_token_id"
        EOS_ID = "tokenizer.ggml.eos_token_id"
        EOT_ID = "tokenizer.ggml.eot_token_id"
        UNK_ID = "tokenizer.ggml.unknown_token_id"
        PAD_ID = "tokenizer.ggml.padding_token_id"
        ADD_BOS = "tokenizer.ggml.add_bos_token"
        ADD_EOS = "tokenizer.ggml.add_eos_token"
        ADD_PREFIX = "tokenizer.ggml.add_space_prefix"
        CHAT_TEMPLATE = "tokenizer.chat_template"
        FIM_PRE_ID = "tokenizer.ggml.fim_pre_token_id"
        FIM_SUF_ID = "tokenizer.ggml.fim_suf_token_id"
        FIM_MID_ID = "tokenizer.ggml.fim_mid_token_id"


# Every key of a tokenizer starts with this; a tokenizer-only GGUF holds just these.
TOKENIZER_PREFIX = "tokenizer."
