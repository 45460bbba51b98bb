"""Typed errors for conversion: each names the file and says what is wrong with it."""

from __future__ import annotations

from llamacode.runtime.errors import InvalidModelError, LlamacodeError


class ConvertError(LlamacodeError):
    """Base class for everything that stops a conversion; no output file is left behind."""


class UnknownSourceError(ConvertError):
    """The source is neither a llamacode checkpoint, a Hugging Face Llama directory nor a GGUF."""


class UnsupportedArchitectureError(ConvertError):
    """The model is not a Llama (or uses a Llama feature this converter does not handle)."""


class TruncatedFileError(ConvertError):
    """A weights file ends before the data its header promises."""


class CorruptHeaderError(ConvertError):
    """A weights file whose header contradicts itself (sizes, offsets, dtypes)."""


class TensorShapeError(ConvertError):
    """A tensor is missing, unexpected, or has a shape the model config does not allow."""


class MissingTokenizerError(ConvertError):
    """No usable tokenizer next to the weights."""


class UnsupportedTypeError(ConvertError):
    """A quantization type this command cannot produce."""


class OutputExistsError(ConvertError):
    """The output directory exists and is not empty; nothing is overwritten."""


class QuantizeFailedError(ConvertError):
    """llama.cpp's quantizer reported a failure."""


class FimTokensNotFoundError(ConvertError):
    """The vocabulary holds no fill-in-the-middle tokens to declare."""


class InvalidGGUFError(ConvertError, InvalidModelError):
    """A GGUF file that cannot be read (bad magic, truncated, inconsistent)."""


class MissingWeightsError(ConvertError):
    """No weights file where the model's layout says one must be."""
