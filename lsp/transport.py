"""The server's byte streams: Content-Length frames in, JSON-RPC messages to pygls.

pygls 2.1's own reader trusts its peer: a frame whose length is short, long or missing
desynchronizes the stream for good (every later message is lost), a huge length makes it
allocate that many bytes at once (MemoryError ends the server), and a request whose
params do not fit the method's type is dropped without an answer (the editor waits
forever). This reader caps the body size, resynchronizes on the next header, answers
what it can identify with a JSON-RPC error (a body that is not JSON gets -32700 Parse
error, with id null as JSON-RPC says), and tells the user about a frame too large to read.

Resynchronizing is safe because the header ``Content-Length: N`` followed by a raw CR LF
can never occur inside a valid JSON body: a JSON string holds no raw CR or LF, and the
words are not a JSON token. A document whose text says ``Content-Length:`` is escaped
inside its frame, so it cannot be mistaken for a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from lsprotocol.types import (
    TEXT_DOCUMENT_DID_OPEN,
    WINDOW_SHOW_MESSAGE,
    ErrorCodes,
    MessageType,
    ResponseError,
)
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.io_ import StdoutWriter

log = logging.getLogger("llamacode.lsp")

MAX_BODY_BYTES = 64 * 1024 * 1024  # a frame this large is skipped, not buffered
MAX_HEADER_BYTES = 8 * 1024  # a header block longer than this is noise
MAX_PENDING_REQUESTS = 128  # beyond this, input is read slowly (the client slows down)
_SLOW_READ_S = 0.05
_HEADER = re.compile(rb"content-length:[ \t]*(\d{1,20})[ \t]*\r\n", re.IGNORECASE)
_HEADER_END = b"\r\n\r\n"
_KEEP = 64  # bytes kept across chunks so a header split between reads is still seen
_READ_CHUNK = 64 * 1024
_SNIFF_BYTES = 4096  # of an oversized body, kept to say which message it was
_SNIFFED_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,200})"')
_SNIFFED_URI = re.compile(rb'"uri"\s*:\s*"([^"\\]{1,2000})"')
_SNIFFED_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")')


@dataclass(frozen=True)
class DroppedFrame:
    """A frame over the size limit, skipped unread except for its first bytes."""

    length: int
    head: bytes

    @property
    def method(self) -> str | None:
        match = _SNIFFED_METHOD.search(self.head)
        return match.group(1).decode("utf-8", "replace") if match else None

    @property
    def uri(self) -> str | None:
        match = _SNIFFED_URI.search(self.head)
        return match.group(1).decode("utf-8", "replace") if match else None

    @property
    def request_id(self) -> int | str | None:
        """The id of a request, when it comes before ``params`` (so it is the top level's)."""
        params = self.head.find(b'"params"')
        match = _SNIFFED_ID.search(self.head, 0, params if params >= 0 else len(self.head))
        if match is None:
            return None
        raw = match.group(1)
        return raw[1:-1].decode("utf-8", "replace") if raw.startswith(b'"') else int(raw)


class FrameParser:
    """Incremental: :meth:`feed` takes bytes as they arrive, returns the complete bodies.

    ``skipped`` counts the stretches of input that were not a usable frame (junk before a
    header, a header block without a length, an oversized or truncated body);
    ``dropped`` lists the oversized frames until :meth:`take_dropped` takes them.
    """

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self.max_body = max_body
        self.skipped = 0
        self.dropped: list[DroppedFrame] = []
        self._dropping: tuple[int, bytearray] | None = None  # length and head being dropped
        self._buf = bytearray()
        self._length: int | None = None  # body length being read; None while in headers
        self._scanned = 0  # body bytes already searched for a header
        self._discard = 0  # bytes of an oversized body still to drop

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        bodies: list[bytes] = []
        while True:
            if self._discard:
                if not self._drop_oversized():
                    return bodies
            elif self._length is None:
                if not self._read_header():
                    return bodies
            else:
                body = self._read_body()
                if body is None:
                    return bodies
                bodies.append(body)

    def take_dropped(self) -> list[DroppedFrame]:
        """The oversized frames skipped since the last call."""
        dropped, self.dropped = self.dropped, []
        return dropped

    def _skip(self, reason: str, count: int) -> None:
        self.skipped += 1
        log.warning("ignoring %d bytes of input: %s", count, reason)

    def _read_header(self) -> bool:
        end = self._buf.find(_HEADER_END)
        if end < 0:
            if len(self._buf) > MAX_HEADER_BYTES:
                self._drop_junk("no header block end", keep=_KEEP)
            return False
        block = bytes(self._buf[: end + 2])
        matches = list(_HEADER.finditer(block))
        del self._buf[: end + len(_HEADER_END)]
        if not matches:
            self._skip("a header block without Content-Length", len(block) + 2)
            return True
        match = matches[-1]
        if match.start() and not _only_headers(block[: match.start()]):
            self._skip("junk before a Content-Length header", match.start())
        length = int(match.group(1))
        if length > self.max_body:
            self._skip(f"a frame of {length} bytes (the limit is {self.max_body})", 0)
            self._discard = length
            self._dropping = (length, bytearray())
            self._scanned = 0
            return True
        self._length = length
        self._scanned = 0
        return True

    def _read_body(self) -> bytes | None:
        assert self._length is not None
        limit = min(len(self._buf), self._length)
        header = _HEADER.search(self._buf, max(0, self._scanned - _KEEP), limit + _KEEP)
        if header is not None and header.start() < self._length:
            # The length was a lie: the next frame starts inside this body.
            body = bytes(self._buf[: header.start()])
            del self._buf[: header.start()]
            self._length = None
            return body
        self._scanned = limit
        if len(self._buf) < self._length:
            return None
        start = _unfinished_header(self._buf, self._length)
        if start is not None:
            if _HEADER.match(self._buf, start):
                body = bytes(self._buf[:start])
                del self._buf[:start]
                self._length = None
                return body
            if _could_be_header(bytes(self._buf[start:])):
                return None  # the bytes that tell a header from a body are still coming
        body = bytes(self._buf[: self._length])
        del self._buf[: self._length]
        self._length = None
        return body

    def _drop_oversized(self) -> bool:
        header = _HEADER.search(self._buf)
        if header is not None and header.start() < self._discard:
            self._drop_bytes(header.start())
            self._dropped_all()
            return True
        if len(self._buf) >= self._discard:
            self._drop_bytes(self._discard)
            self._dropped_all()
            return True
        keep = min(_KEEP, len(self._buf))
        self._drop_bytes(len(self._buf) - keep)
        return False

    def _drop_bytes(self, count: int) -> None:
        if self._dropping is not None:
            head = self._dropping[1]
            head += self._buf[: min(count, _SNIFF_BYTES - len(head))]
        self._discard -= count
        del self._buf[:count]

    def _dropped_all(self) -> None:
        self._discard = 0
        if self._dropping is not None:
            length, head = self._dropping
            self.dropped.append(DroppedFrame(length, bytes(head)))
            self._dropping = None

    def _drop_junk(self, reason: str, keep: int) -> None:
        tail = self._buf.lower().rfind(b"content-length")
        cut = tail if tail >= 0 and len(self._buf) - tail <= MAX_HEADER_BYTES else -keep
        if cut < 0:
            cut = max(0, len(self._buf) - keep)
        if cut:
            self._skip(reason, cut)
            del self._buf[:cut]


_NAME = b"content-length:"
_AFTER_NAME = re.compile(rb"[ \t]*\d{0,20}[ \t]*\r?")


def _could_be_header(text: bytes) -> bool:
    """``text`` is the start of a ``Content-Length: N`` CR LF line, not yet complete."""
    lower = text[: len(_NAME)].lower()
    if not _NAME.startswith(lower):
        return False
    return len(text) <= len(_NAME) or _AFTER_NAME.fullmatch(text[len(_NAME) :]) is not None


def _unfinished_header(buf: bytearray, end: int) -> int | None:
    """Where a header that ``buf[:end]`` ends in the middle of would start, if anywhere.

    A valid body ends with ``}`` (and maybe whitespace), never with the first bytes of a
    header, so a body that does was declared too long and the next frame starts inside it.
    """
    first = max(0, end - len(_NAME) - 24)
    for start in range(first, end):
        if buf[start] in b"cC" and _could_be_header(bytes(buf[start:end])):
            return start
    return None


def _only_headers(text: bytes) -> bool:
    """``text`` is well-formed header lines (``Name: value`` CR LF), e.g. Content-Type."""
    lines = text.split(b"\r\n")
    return lines[-1] == b"" and all(
        re.fullmatch(rb"[A-Za-z0-9-]+:[^\r\n]*", line) for line in lines[:-1]
    )


def dispatch(protocol: Any, body: bytes) -> Any:
    """Hand one frame body to pygls; answer a broken request instead of dropping it.

    Returns the future of a request still being handled, else None.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        log.warning("answering a frame that is not JSON with Parse error: %s", exc)
        _send_raw(
            protocol,
            _error(None, int(ErrorCodes.ParseError), f"Parse error: the frame is not JSON: {exc}"),
        )
        return None
    msg_id = _request_id(data)
    if isinstance(data, dict) and "id" in data and msg_id is None:
        log.warning("ignoring a message whose id is neither a number nor a string")
        return None
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        if msg_id is not None:
            _answer_error(protocol, msg_id, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message"))
        else:
            log.warning("ignoring a frame that is not a JSON-RPC 2.0 message")
        return
    try:
        message = protocol.structure_message(data)
    except Exception as exc:
        if msg_id is not None and "method" in data:
            method = data.get("method")
            error = JsonRpcInvalidParams(f"invalid params for {method!r}: {exc.__cause__ or exc}")
            _answer_error(protocol, msg_id, error)
        else:
            log.warning("ignoring a malformed message: %s", exc)
        return
    try:
        protocol.handle_message(message)
    except Exception:
        log.exception("could not handle a message")
        return None
    if msg_id is None or "method" not in data:
        return None
    future = protocol._request_futures.get(msg_id)
    return None if future is None or future.done() else future


def _request_id(data: Any) -> int | str | None:
    if not isinstance(data, dict):
        return None
    msg_id = data.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, int | str):
        return None
    return msg_id


def _answer_error(protocol: Any, msg_id: int | str, error: Any) -> None:
    protocol._send_response(msg_id, error=ResponseError(code=error.code, message=error.message))


def _error(msg_id: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


def _send_raw(protocol: Any, message: dict[str, Any]) -> None:
    """Send a message as it is (pygls's own types drop a null id, which JSON-RPC requires)."""
    protocol._send_data(message)


def report_dropped(protocol: Any, frame: DroppedFrame) -> None:
    """Tell the client about a frame too large to read: an error for its request, if it was
    one, and a message the user sees (a document opened that way gets no suggestions)."""
    size = f"{frame.length / 2**20:.0f} MiB (the limit is {MAX_BODY_BYTES // 2**20} MiB)"
    what = frame.method or "a message"
    if frame.uri:
        what += f" for {frame.uri}"
    request_id = frame.request_id
    if request_id is not None and frame.method is not None:
        _send_raw(protocol, _error(request_id, int(ErrorCodes.InvalidRequest), f"{what} is {size}"))
    text = f"llamacode ignored {what}: it is {size}."
    if frame.method == TEXT_DOCUMENT_DID_OPEN:
        text += " That document gets no completions or chat context."
    _send_raw(
        protocol,
        {
            "jsonrpc": "2.0",
            "method": WINDOW_SHOW_MESSAGE,
            "params": {"type": int(MessageType.Warning), "message": text},
        },
    )


async def run(
    server: Any, read: Callable[[], Awaitable[bytes]], stop: threading.Event | None = None
) -> None:
    """Read frames with ``read`` until end of input and hand them to ``server``.

    While :data:`MAX_PENDING_REQUESTS` client requests are pending, input is read one
    chunk per :data:`_SLOW_READ_S`: a flood waits in the client's pipe rather than in the
    server's memory, and the client's answers to the server's own requests (which
    pending requests may wait for) still get through.
    """
    loop = asyncio.get_running_loop()
    parser = FrameParser()
    pending: set[Any] = set()
    room = asyncio.Event()
    room.set()

    def release(future: Any) -> None:
        pending.discard(future)
        if len(pending) < MAX_PENDING_REQUESTS:
            room.set()

    def finished(future: Any) -> None:
        loop.call_soon_threadsafe(release, future)

    while stop is None or not stop.is_set():
        if not room.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room.wait(), _SLOW_READ_S)
        data = await read()
        if not data:
            log.info("the client closed the connection")
            return
        for body in parser.feed(data):
            future = dispatch(server.protocol, body)
            if future is not None:
                pending.add(future)
                future.add_done_callback(finished)
        for frame in parser.take_dropped():
            report_dropped(server.protocol, frame)
        if len(pending) >= MAX_PENDING_REQUESTS:
            room.clear()


def serve_stdio(server: Any, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve over stdin/stdout until the client says exit or closes stdin; the exit code.

    stdin is read on a daemon thread, from its file descriptor: a read blocked on a
    silent client must neither keep the process alive after ``exit`` nor hold the lock
    of ``sys.stdin``'s buffer while the interpreter shuts down (a fatal error).
    """
    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        room = threading.Semaphore(2)  # chunks read ahead; the rest waits in the pipe
        fd = stdin.fileno()

        def pump() -> None:
            while True:
                room.acquire()
                try:
                    data = os.read(fd, _READ_CHUNK)
                except (OSError, ValueError):
                    data = b""
                try:
                    loop.call_soon_threadsafe(chunks.put_nowait, data)
                except RuntimeError:  # the loop is gone: the server is exiting
                    return
                if not data:
                    return

        async def read() -> bytes:
            data = await chunks.get()
            room.release()
            return data

        threading.Thread(target=pump, name="llamacode-stdin", daemon=True).start()
        await run(server, read, stop)

    return _run_main(server, main)


def serve_tcp(server: Any, host: str, port: int) -> int:
    """Serve one client on ``host:port`` (the server ends with that connection)."""
    server._stop_event = stop = threading.Event()

    async def main() -> None:
        done = asyncio.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server.protocol.set_writer(writer)
            try:
                await run(server, lambda: reader.read(_READ_CHUNK), stop)
            finally:
                done.set()

        listener = await asyncio.start_server(connection, host, port)
        log.info("listening on %s", ", ".join(str(s.getsockname()) for s in listener.sockets))
        async with listener:
            await done.wait()

    return _run_main(server, main)


class _Discard:
    """The writer once the session is over: answers to abandoned requests go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _run_main(server: Any, main: Callable[[], Awaitable[None]]) -> int:
    async def session() -> None:
        try:
            await main()
        finally:
            # Input ended or exit came: stop generations; requests still running are
            # cancelled by asyncio.run, and their answers have no one to go to.
            server.cancel_all()
            server.protocol.set_writer(_Discard())

    code = 0
    try:
        asyncio.run(session())
    except SystemExit as exc:  # pygls's exit handler: 0 after shutdown, else 1
        code = exc.code if isinstance(exc.code, int) else 0
    except (BrokenPipeError, ConnectionResetError):
        log.error("the connection to the client is lost; stopping")
    except KeyboardInterrupt:
        pass
    finally:
        server.cancel_all()
        server.shutdown()
    return code
