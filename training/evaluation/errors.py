"""Typed errors for evaluation input and for execution that could not be judged."""

from __future__ import annotations

from llamacode.runtime.errors import LlamacodeError


class EvaluationError(LlamacodeError):
    """An evaluation could not produce a trustworthy score (e.g. the sandbox broke)."""


class DataFormatError(LlamacodeError):
    """A task file that is missing, unreadable or lacks required fields."""
