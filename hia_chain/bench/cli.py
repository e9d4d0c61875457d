"""``hia-chain bench``: the alignment-per-call benchmark and the overhead figures.

The flags live in :mod:`hia_chain.cli.bench`; this module runs what they ask for.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from hia_chain.errors import ConfigError
from hia_chain.scorers.base import Heuristic

__all__ = ["run", "split_prompts"]


@dataclass(frozen=True)
class _Size:
    """How big a benchmark run is, unless flags say otherwise."""

    prompts: int
    budgets: tuple[int, ...]
    max_tokens: int


QUICK = _Size(prompts=4, budgets=(1, 2), max_tokens=64)
FULL = _Size(prompts=50, budgets=(1, 2, 4, 8), max_tokens=96)


def run(args: argparse.Namespace) -> int:
    """Run ``hia-chain bench`` with its parsed flags (:mod:`hia_chain.cli.bench`)."""
    from hia_chain.bench.data import default_prompts_path, load_prompts
    from hia_chain.bench.harness import BenchConfig, make_items, run_experiment
    from hia_chain.bench.report import summarize, write_plot
    from hia_chain.factory import response_model
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    size = QUICK if args.quick else FULL
    budgets = args.budgets or size.budgets
    path = args.prompts or default_prompts_path()
    pool = load_prompts(path)
    total = sum(1 for line in path.read_text().splitlines() if line.strip())
    if len(pool) < total:
        print(f"bench: {total - len(pool)} of {total} prompts are over 600 characters: left out")
    limit = args.limit or size.prompts
    pool = split_prompts(pool, args.split)
    # A seeded sample of the split, not its first rows.
    prompts = random.Random(args.seed).sample(pool, min(limit, len(pool)))
    objectives = list(BUILTIN_OBJECTIVES.values())
    items = make_items(prompts, objectives, args.seed)
    if args.base_url and not args.model:
        raise ConfigError("--base-url needs --model NAME.")
    methods = _methods(args.methods, args.heuristic_state)
    if args.oracle_samples < 1:
        raise ConfigError("--oracle-samples must be >= 1.")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"split": args.split, "prompts": str(path), "seed": args.seed}
    (args.out / "meta.json").write_text(json.dumps(meta))
    print(
        f"bench: {len(items)} prompts from the {args.split} split of {path}, "
        f"budgets {budgets}, out {args.out}"
    )
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.base_url:
            base_url, model = args.base_url, args.model
        else:
            from hia_chain.local.embedded import embedded_model_path
            from hia_chain.local.serve import serve_model

            served: Any = stack.enter_context(
                serve_model(
                    embedded_model_path(),
                    threads=1,
                    continuous_batching=args.continuous_batching,
                )
            )
            base_url, model = served.base_url, served.model
            print(f"bench: transformers serve ready at {base_url}")
        llm = response_model(
            base_url, model, temperature=0.7, max_tokens=size.max_tokens, timeout=300
        )
        _check_sampling(llm, items[0].prompt)
        config = BenchConfig(
            budgets=budgets, seed=args.seed, methods=methods, oracle_samples=args.oracle_samples
        )
        with _progress_bar(len(items)) as advance:
            anyio.run(
                run_experiment,
                items,
                objectives,
                builtin_scorers(list(BUILTIN_OBJECTIVES)),
                llm,
                lambda kind: _heuristic(kind, objectives, args.heuristic_state),
                config,
                args.out,
                advance,
            )
        peak = served.peak_rss_mb() if not args.base_url else None
    print(f"bench: experiment took {time.perf_counter() - started:.0f} s")
    if peak is not None:
        print(f"bench: transformers serve peak RSS {peak:.0f} MB")
    text = summarize(args.out)
    write_plot(args.out)
    if not args.skip_overhead:
        text += _overhead_section(objectives)
        (args.out / "summary.md").write_text(text)
    print(text)
    return 0


def _check_sampling(llm: Any, prompt: str) -> None:
    """Refuse to benchmark a server that decodes greedily: best-of-N would be N copies.

    Raises:
        ConfigError: three sampled answers to one prompt are identical.
    """
    texts = {llm.invoke(prompt, seed=i, max_tokens=24).text for i in range(3)}
    if len(texts) == 1:
        msg = (
            "The response model returned the same answer to three sampled calls: it ignores "
            "temperature (for `transformers serve`, set do_sample=true in the model folder's "
            "generation_config.json). Best-of-N against it would be meaningless."
        )
        raise ConfigError(msg)


def split_prompts(pool: list[tuple[str, str]], split: str) -> list[tuple[str, str]]:
    """``dev`` = the first half of the file's usable prompts, ``test`` = the second half.

    Fixed by file order, not by seed, so no choice of seed can move a prompt between them.
    """
    half = len(pool) // 2
    return {"dev": pool[:half], "test": pool[half:], "all": pool}[split]


def _methods(names: tuple[str, ...] | None, state: Path | None) -> tuple[Any, ...]:
    from hia_chain.bench.methods import METHODS

    by_name = {m.name: m for m in METHODS}
    if names is None:
        return tuple(m for m in METHODS if m.heuristic != "warm" or state is not None)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        msg = f"--methods: unknown {unknown}; choose from {', '.join(by_name)}."
        raise ConfigError(msg)
    chosen = tuple(by_name[n] for n in names)
    if state is None and any(m.heuristic == "warm" for m in chosen):
        raise ConfigError(
            "The hia-*[warm] methods need --heuristic-state FILE (hia-chain calibrate)."
        )
    return chosen


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar over items; each finished item prints its line above it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("items", total=total)

        def advance(line: str) -> None:
            bar.console.print(line)
            bar.advance(task)

        yield advance


def _heuristic(kind: str, objectives: list[Any], state: Path | None = None) -> Heuristic:
    """A method's heuristic: ``warm`` is the learned one warm-started from ``state``; every
    ``draft`` heuristic shares one greedy local drafter (loaded once)."""
    from hia_chain.factory import heuristic

    if kind == "warm":
        return heuristic("learned", objectives, state=state)
    drafter = _drafter() if kind == "draft" else None
    return heuristic(kind, objectives, drafter=drafter, draft_tokens=_DRAFT_TOKENS)


_DRAFT_TOKENS = 48


@functools.cache
def _drafter() -> Any:
    from hia_chain.local import LocalChatModel

    return LocalChatModel(temperature=0.0, max_tokens=_DRAFT_TOKENS)


def _overhead_section(objectives: list[Any]) -> str:
    from hia_chain.bench.overhead import measure_overhead, measure_throughput

    factories: dict[str, Callable[[], Heuristic]] = {
        k: functools.partial(_heuristic, k, objectives) for k in ("instruction", "learned", "draft")
    }
    rows = anyio.run(lambda: measure_overhead(factories))
    lines = [
        "",
        "## Overhead against a fake response model of 0.5 s latency",
        "",
        "| heuristic | search | B | median s/request | ideal s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.heuristic} | {r.search} | {r.budget} | {r.median_seconds:.2f} | {r.ideal_seconds:.2f} | {r.ratio:.2f}× |"
        )
    rps, ideal = anyio.run(lambda: measure_throughput(factories["learned"]))
    lines += [
        "",
        f"abatch of 64 requests, max_concurrency 16, bon B=2, learned heuristic: "
        f"{rps:.1f} req/s vs ideal {ideal:.1f} req/s ({rps / ideal:.2f} of ideal)",
        "",
    ]
    return "\n".join(lines)
