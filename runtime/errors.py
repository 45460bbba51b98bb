"""Typed errors for everything a user can get wrong or hand us broken.

Each message says what went wrong and what to do next; callers (CLI, language server)
show ``str(error)`` as it is.
"""

from __future__ import annotations


class LlamacodeError(Exception):
    """Base class: an error the user can act on (never a bug in llamacode)."""


class ModelNotFoundError(LlamacodeError):
    """No model file at the given path, or no model could be resolved at all."""


class InvalidModelError(LlamacodeError):
    """The file is not a well-formed GGUF (bad magic, truncated, inconsistent header)."""


class ModelLoadError(LlamacodeError):
    """llama.cpp refused a file that looked like a GGUF (unknown architecture, bad tensors)."""


class InsufficientMemoryError(LlamacodeError):
    """The model plus its KV cache would not fit in the memory that is free."""


class ConfigError(LlamacodeError):
    """Settings that contradict each other or name something that does not exist."""


class TemplateError(LlamacodeError):
    """A chat template that cannot be rendered safely."""


class AdapterError(LlamacodeError):
    """A LoRA adapter file that is missing, unreadable or not a LoRA adapter."""


class AdapterMismatchError(AdapterError):
    """A well-formed LoRA adapter made for another model (architecture, tensors, shapes)."""
