"""Which documents lie inside the workspace the client opened, by their real paths.

A client names its workspace by root and folder URIs; a document outside them is not
completed, read for context or sent to chat. The check compares real paths: the URI
scheme is matched without regard to case (``FILE:///etc/passwd`` is a file URI), and
symbolic links are resolved, so a link inside the workspace that points out of it leads
out of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import unquote

from pygls.uris import to_fs_path

_FILE_SCHEME = "file"


def is_file_uri(uri: str) -> bool:
    """``uri`` names a file on this machine (its scheme is ``file``, in any case)."""
    scheme, colon, _ = uri.partition(":")
    return bool(colon) and scheme.lower() == _FILE_SCHEME


def fs_path(uri: str) -> str | None:
    """The real, absolute path a ``file:`` URI names; None for other URIs or relative paths."""
    if not is_file_uri(uri):
        return None
    path = to_fs_path(unquote(uri))
    if not path or not os.path.isabs(path):
        return None
    return os.path.realpath(path)


def is_under(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies below it (both real paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def in_workspace(uri: str, root_uris: Iterable[str | None]) -> bool:
    """Whether the document ``uri`` lies inside one of the workspace's roots.

    A client that named no ``file:`` root (a single file opened on its own) has no boundary
    to check. Other schemes (unsaved ``untitled:`` buffers) have no path to leave by.
    """
    if not is_file_uri(uri):
        return True
    roots = [fs_path(root) for root in root_uris if root and is_file_uri(root)]
    if not roots:
        return True
    path = fs_path(uri)
    if path is None:
        return False
    return any(root is not None and is_under(path, root) for root in roots)
