"""Loaded into every Python process of the offline tests: refuses and records network use.

Python's audit hooks see every socket connect, DNS lookup and datagram send made from
Python or through it; each attempt is written to $LLAMACODE_NETLOG and fails.
"""

import os
import socket
import sys

_LOG = os.environ.get("LLAMACODE_NETLOG")
_EVENTS = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.sendto",
}


def _guard(event: str, args: tuple) -> None:
    if event not in _EVENTS:
        return
    if event == "socket.connect" and getattr(args[0], "family", None) == socket.AF_UNIX:
        return
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {event} {args[1:]!r}\n")
    raise OSError(f"network access blocked in the offline test: {event}")


sys.addaudithook(_guard)
