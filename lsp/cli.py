"""``llamacode serve`` (the language server) and ``llamacode demo`` (a client that drives it)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import BinaryIO

from llamacode.lsp.settings import ServerSettings
from llamacode.runtime.dataclass_flags import add_flags, values_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``demo`` verbs."""
    from llamacode.runtime.cli import add_model_flags

    serve = subparsers.add_parser(
        "serve",
        help="run the language server (stdio by default)",
        description="Language server: inline completion, completion, chat and commands.",
    )
    transport = serve.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout")
    transport.add_argument("--tcp", action="store_true", help="listen on a TCP port instead")
    serve.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    add_model_flags(serve)
    add_settings_flags(serve)
    serve.set_defaults(func=serve_command)

    demo = subparsers.add_parser(
        "demo",
        help="start the server, complete a file and ask a chat question through it",
        description="Open a file in `llamacode serve` as an editor would; print the answers.",
    )
    demo.add_argument("file", nargs="?", default="examples/sample.py", help="source file")
    demo.add_argument("--line", type=int, help="1-based cursor line (default: auto)")
    demo.add_argument("--column", type=int, help="1-based cursor column (default: line end)")
    demo.add_argument("-m", "--model", help="GGUF file (default: see `llamacode models`)")
    demo.add_argument("--threads", type=int, help="llama.cpp threads for the server")
    demo.add_argument(
        "--question", default="Write a Python function that reverses a string.", help="chat"
    )
    demo.set_defaults(func=demo_command)


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each :class:`ServerSettings` field (the model and adapter paths are the
    engine's ``--model`` and ``--adapter``)."""
    add_flags(parser.add_argument_group("completion"), ServerSettings)


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The settings the command line asks for."""
    return ServerSettings(
        **values_from_args(ServerSettings, args),
        model_path=args.model,
        adapter_path=args.adapter_path,
    )


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until the client says exit."""
    from llamacode.lsp.server import create_server
    from llamacode.lsp.transport import serve_stdio, serve_tcp
    from llamacode.runtime.cli import engine_config

    logging.getLogger("pygls").setLevel(logging.WARNING)
    # A file that crashes llama.cpp must not take the editor's server down with it.
    config = dataclasses.replace(engine_config(args), isolate_load=True)
    server = create_server(settings_from_args(args), config)
    if args.tcp:
        code = serve_tcp(server, args.host, args.port)
    else:
        code = serve_stdio(server, sys.stdin.buffer, _private_stdout())
    server.host.close()
    return code


def _private_stdout() -> BinaryIO:
    """The protocol's own copy of stdout; file descriptor 1 then points at stderr.

    llama.cpp (and llama-cpp-python, which silences loading by pointing fd 1 at
    /dev/null for a while, from whichever thread loads) would otherwise swallow or corrupt
    protocol messages written while a model loads.
    """
    sys.stdout.flush()
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_out


def demo_command(args: argparse.Namespace) -> int:
    """Drive the server like an editor: open, complete, chat, print with latencies."""
    from llamacode.lsp.demo import run_demo

    return run_demo(
        args.file,
        line=args.line,
        column=args.column,
        model=args.model,
        threads=args.threads,
        question=args.question,
    )
