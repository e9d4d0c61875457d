"""``hia-chain bench``: the flags of the alignment-per-call benchmark.

The run itself is :func:`hia_chain.bench.cli.run` (``[bench]`` extra), imported only when the
command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hia_chain.cli.options import add_endpoint

if TYPE_CHECKING:
    from hia_chain.cli.options import Subparsers

__all__ = ["SPLITS", "register", "run"]

SPLITS = ("dev", "test", "all")
"""``--split``: the first half of the prompt file, the second half, or both."""


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` → ``(1, 2, 4)``."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4, got {text!r}") from None


def register(sub: Subparsers) -> None:
    """Add ``bench`` to the ``hia-chain`` subcommands."""
    p = sub.add_parser(
        "bench", help="Benchmark HIA against best-of-N, greedy and beam at equal budgets."
    )
    p.add_argument("--quick", action="store_true", help="4 prompts, B ∈ {1, 2}: minutes, not hours")
    p.add_argument("--prompts", type=Path, help="JSONL with `instruction` or `prompt` per line")
    p.add_argument("--limit", type=int, help="number of prompts (default 50, quick 4)")
    p.add_argument("--budgets", type=_int_list, help="e.g. 1,2,4,8")
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    add_endpoint(p, default="the embedded SmolLM2 behind `transformers serve`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="which half of the prompt file (after the length filter, in file order): develop "
        "and tune on dev, report on test (default)",
    )
    p.add_argument(
        "--methods", type=lambda s: tuple(s.split(",")), help="comma-separated method names"
    )
    p.add_argument(
        "--heuristic-state",
        type=Path,
        help="a `hia-chain calibrate` file: adds the warm-started methods (hia-*[warm])",
    )
    p.add_argument(
        "--oracle-samples",
        type=int,
        default=3,
        help="samples of each first-round candidate for the expected-reward oracle (default 3)",
    )
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument(
        "--continuous-batching",
        action="store_true",
        help="serve with continuous batching: ~2x faster on CPU, but the server then ignores "
        "per-request seeds (answers are still shared across methods, see responses.py)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain bench``."""
    from hia_chain.bench.cli import run as run_bench

    return run_bench(args)
