"""``hia-chain bench``: the alignment-per-call benchmark and the overhead figures."""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio

from hia_chain.errors import ConfigError

__all__ = ["register"]

QUICK = {"prompts": 4, "budgets": (1, 2), "max_tokens": 64}
FULL = {"prompts": 50, "budgets": (1, 2, 4, 8), "max_tokens": 96}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="Benchmark HIA against best-of-N, greedy and beam at equal budgets."
    )
    p.add_argument("--quick", action="store_true", help="4 prompts, B ∈ {1, 2}: minutes, not hours")
    p.add_argument("--prompts", type=Path, help="JSONL with `instruction` or `prompt` per line")
    p.add_argument("--limit", type=int, help="number of prompts (default 50, quick 4)")
    p.add_argument(
        "--budgets", type=lambda s: tuple(int(x) for x in s.split(",")), help="e.g. 1,2,4,8"
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    p.add_argument("--base-url", help="an OpenAI-compatible endpoint instead of the local server")
    p.add_argument("--model", help="model name at --base-url")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--split",
        choices=["dev", "test", "all"],
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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from langchain_openai import ChatOpenAI

    from hia_chain.bench.data import default_prompts_path, load_prompts
    from hia_chain.bench.harness import BenchConfig, make_items, run_experiment
    from hia_chain.bench.report import summarize, write_plot
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    size = QUICK if args.quick else FULL
    budgets = args.budgets or size["budgets"]
    path = args.prompts or default_prompts_path()
    pool = load_prompts(path)
    total = sum(1 for line in path.read_text().splitlines() if line.strip())
    if len(pool) < total:
        print(f"bench: {total - len(pool)} of {total} prompts are over 600 characters: left out")
    limit = args.limit or size["prompts"]
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
        llm = ChatOpenAI(
            base_url=base_url,
            model=model,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),  # type: ignore[arg-type]
            temperature=0.7,
            max_tokens=size["max_tokens"],
            max_retries=0,
            timeout=300,
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


_drafter: Any = None


def _heuristic(kind: str, objectives: list[Any], state: Path | None = None) -> Any:
    from hia_chain.scorers.instruction import InstructionHeuristic

    if kind == "instruction":
        return InstructionHeuristic(objectives)
    if kind in ("learned", "warm"):
        from hia_chain.scorers.learned import LearnedHeuristic

        fallback = InstructionHeuristic(objectives)
        if kind == "warm":
            return LearnedHeuristic.load(state, fallback=fallback, objectives=objectives)  # type: ignore[arg-type]
        return LearnedHeuristic(fallback=fallback, objectives=objectives)
    if kind == "draft":
        global _drafter
        from hia_chain.local import LocalChatModel
        from hia_chain.scorers.draft import DraftHeuristic
        from hia_chain.scorers.text import builtin_scorers

        if _drafter is None:
            _drafter = LocalChatModel(temperature=0.0, max_tokens=48)
        return DraftHeuristic(
            _drafter, builtin_scorers([o.name for o in objectives]), max_tokens=48
        )
    msg = f"unknown heuristic {kind!r}"
    raise ConfigError(msg)


def _overhead_section(objectives: list[Any]) -> str:
    from hia_chain.bench.overhead import measure_overhead, measure_throughput

    factories = {
        k: (lambda k=k: _heuristic(k, objectives)) for k in ("instruction", "learned", "draft")
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
