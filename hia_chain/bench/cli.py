"""``hia-chain bench``: the alignment-per-call benchmark and the overhead figures."""

from __future__ import annotations

import argparse
import os
import random
import time
from contextlib import ExitStack
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
    # A seeded sample, not the first rows: prompts nobody tuned the phrase bank on.
    prompts = random.Random(args.seed).sample(pool, min(limit, len(pool)))
    objectives = list(BUILTIN_OBJECTIVES.values())
    items = make_items(prompts, objectives, args.seed)
    if args.base_url and not args.model:
        raise ConfigError("--base-url needs --model NAME.")
    print(f"bench: {len(items)} prompts from {path}, budgets {budgets}, out {args.out}")
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.base_url:
            base_url, model = args.base_url, args.model
        else:
            from hia_chain.local.embedded import embedded_model_path
            from hia_chain.local.serve import serve_model

            served = stack.enter_context(
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
        config = BenchConfig(budgets=budgets, seed=args.seed)
        anyio.run(
            run_experiment,
            items,
            objectives,
            builtin_scorers(list(BUILTIN_OBJECTIVES)),
            llm,
            lambda kind: _heuristic(kind, objectives),
            config,
            args.out,
            print,
        )
    print(f"bench: experiment took {time.perf_counter() - started:.0f} s")
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


_drafter: Any = None


def _heuristic(kind: str, objectives: list[Any]) -> Any:
    from hia_chain.scorers.instruction import InstructionHeuristic

    if kind == "instruction":
        return InstructionHeuristic(objectives)
    if kind == "learned":
        from hia_chain.scorers.learned import LearnedHeuristic

        return LearnedHeuristic(fallback=InstructionHeuristic(objectives))
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
