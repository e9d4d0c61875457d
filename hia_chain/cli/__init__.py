"""The ``hia-chain`` command: align a prompt, calibrate, steer local decoding, serve, benchmark.

Thin on purpose: each subcommand parses its flags, builds library objects and prints. Nothing
runs at import, and a subcommand imports its optional extras only when it runs.

Layout (one module per subcommand, above the library; nothing in the library imports this)::

    __init__   main(): the parser, exit codes, one line per failure
    options    flags shared by the subcommands (--goal, --max-tokens, --base-url, ...)
    align      hia-chain align      (display: the candidate table and progress)
    calibrate  hia-chain calibrate
    ivg        hia-chain ivg        ([local] extra)
    serve      hia-chain serve      ([server] extra)
    bench      hia-chain bench      (the run is hia_chain.bench.cli)
    errors     failure -> exit code and one line naming the fix
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from hia_chain.cli import align, bench, calibrate, ivg, serve
from hia_chain.cli.errors import EXIT_INTERRUPTED, check_text, describe

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return version("hia-chain")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``hia-chain`` parser with every subcommand (argparse only: nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="hia-chain", description="Inference-time alignment for LangChain chat models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (align, calibrate, ivg, bench, serve):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hia-chain`` console script and ``python -m hia_chain``.

    Every failure is one line on stderr naming the problem and the fix; exit codes: 2 bad
    input, 1 runtime failure, 130 interrupted (``HIA_CHAIN_DEBUG=1`` shows tracebacks).
    """
    args = build_parser().parse_args(argv)
    try:
        for name in ("prompt", "model", "base_url"):
            value = getattr(args, name, None)
            if isinstance(value, str):
                what = "The prompt" if name == "prompt" else f"--{name.replace('_', '-')}"
                check_text(value, what)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("hia-chain: interrupted", file=sys.stderr)
        if argv is None:  # the console script: leave now, not after local generation threads
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("HIA_CHAIN_DEBUG"):
            raise
        code, line = describe(exc, getattr(args, "base_url", None))
        print(f"hia-chain: error: {line}", file=sys.stderr)
        return code
