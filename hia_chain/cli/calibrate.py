"""``hia-chain calibrate``: warm-start the learned heuristic on the shipped calibration prompts.

::

    hia-chain calibrate --base-url http://127.0.0.1:8000/v1 --model NAME --calls 240 --out state.json
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import TYPE_CHECKING

from hia_chain.cli.options import add_endpoint, add_sampling
from hia_chain.errors import ConfigError

if TYPE_CHECKING:
    from hia_chain.cli.options import Subparsers

__all__ = ["register", "run"]


def register(sub: Subparsers) -> None:
    """Add ``calibrate`` to the ``hia-chain`` subcommands."""
    p = sub.add_parser(
        "calibrate",
        help="Warm-start the learned heuristic: spend N calls on the shipped calibration prompts.",
    )
    p.add_argument("--calls", type=int, required=True, help="response-model calls to spend")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the state (JSON)")
    add_sampling(p, max_tokens=96, seed=0)
    add_endpoint(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain calibrate``.

    Raises:
        ConfigError: ``--calls`` below 1.
    """
    import anyio

    from hia_chain.calibration import calibrate
    from hia_chain.factory import ask, learned_heuristic, response_model
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    if args.calls < 1:
        raise ConfigError("--calls must be >= 1.")
    objectives = list(BUILTIN_OBJECTIVES.values())
    llm = response_model(
        args.base_url,
        args.model,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    heuristic = learned_heuristic(objectives)

    def progress(done: int, total: int) -> None:
        print(f"\rcalibrate: {done}/{total} calls", end="", file=sys.stderr, flush=True)

    report = anyio.run(
        lambda: calibrate(
            heuristic,
            functools.partial(ask, llm),
            objectives,
            builtin_scorers(list(BUILTIN_OBJECTIVES)),
            calls=args.calls,
            seed=args.seed,
            progress=progress,
        )
    )
    heuristic.save(
        args.out,
        model=args.model or "embedded SmolLM2-135M-Instruct",
        base_url=args.base_url,
        calls=report.calls,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )
    print(
        f"\ncalibrate: {report.calls} calls, {report.observations} observations from "
        f"{report.requests} requests ({report.failed_requests} failed) → {args.out}"
    )
    return 0
