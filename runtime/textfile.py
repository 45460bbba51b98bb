"""The user's text for the command line: files and arguments, bounded and checked as UTF-8.

A path can name anything: a binary file, a device that never ends (/dev/zero), a file of
gigabytes. Each is refused with a :class:`ConfigError` that says what to do instead, before
it can exhaust memory or reach the tokenizer as text it cannot encode.
"""

from __future__ import annotations

from pathlib import Path

from llamacode.runtime.errors import ConfigError

MAX_TEXT_BYTES = 16 * 1024 * 1024


def read_text(path: Path, what: str = "") -> str:
    """The UTF-8 text of ``path`` (``what`` names it in errors: "extra context file")."""
    name = f"{what} {path}" if what else str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror}") from exc
    if len(data) > MAX_TEXT_BYTES:
        raise ConfigError(
            f"{name} is larger than {MAX_TEXT_BYTES // 2**20} MiB; give a source file"
        )
    if b"\0" in data:
        raise ConfigError(f"{name} is a binary file, not text; give a source file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{name} is not UTF-8 text (byte {exc.start} is invalid); convert it to UTF-8 first"
        ) from exc


def checked_text(text: str, what: str) -> str:
    """``text`` from the command line or a terminal, refused if it is not valid UTF-8.

    Python hands undecodable bytes of arguments and input over as lone surrogates, which
    no tokenizer can encode.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"the {what} is not valid UTF-8 text (character {exc.start}); check the terminal's "
            "encoding"
        ) from exc
    return text


def decoded_line(raw: bytes, what: str) -> str:
    """One line read as bytes (a terminal's input), decoded as UTF-8 or refused."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the {what} is not valid UTF-8 text (byte {exc.start} is invalid); check the "
            "terminal's encoding"
        ) from exc
