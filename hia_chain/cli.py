"""The ``hia-chain`` command: align a prompt, steer local decoding, run the benchmark.

Thin on purpose: it parses flags, builds library objects and prints. Nothing runs at import.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from hia_chain.errors import ConfigError, HIAError
from hia_chain.goals import parse_goal

__all__ = ["build_parser", "main", "parse_goal"]


def _add_align(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "align", help="Answer a prompt aligned to a goal within a call budget (HIA)."
    )
    p.add_argument("prompt")
    p.add_argument("--goal", action="append", metavar="NAME=VALUE", help="repeatable; 0–4 scale")
    p.add_argument("--budget", type=int, default=2, help="response-model calls (default 2)")
    p.add_argument("--search", choices=["bon", "greedy", "beam", "sample"], default="bon")
    p.add_argument("--filter", choices=["heuristic", "random", "order"], default="heuristic")
    p.add_argument(
        "--reward", choices=["euclidean", "max_error", "goal_completion"], default="euclidean"
    )
    p.add_argument(
        "--heuristic",
        choices=["draft", "learned", "instruction"],
        default=None,
        help="stage-1 heuristic (default: draft with the local model; learned with --base-url)",
    )
    p.add_argument("--candidates", type=int, default=None, help="N candidates per round")
    p.add_argument("--max-tokens", type=int, default=160, help="response tokens per call")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint as the response model")
    p.add_argument("--model", help="model name at --base-url")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_align)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hia-chain", description="Inference-time alignment for LangChain chat models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_align(sub)
    try:
        from hia_chain.local._ivg_cli import register as register_ivg
    except ImportError:
        pass
    else:
        register_ivg(sub)
    from hia_chain.bench.cli import register as register_bench

    register_bench(sub)
    return parser


def _build_aligned(args: argparse.Namespace, goal: dict[str, float]) -> Any:
    from hia_chain.aligned import AlignedChatModel
    from hia_chain.optimizer import LLMPromptOptimizer, MixedOptimizer, TemplateOptimizer
    from hia_chain.scorers.instruction import InstructionHeuristic
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    objectives = list(BUILTIN_OBJECTIVES.values())
    scorers = builtin_scorers(list(BUILTIN_OBJECTIVES))
    local = None
    if args.base_url:
        if not args.model:
            raise ConfigError("--base-url needs --model NAME (the model to ask for there).")
        from langchain_openai import ChatOpenAI

        response = ChatOpenAI(
            base_url=args.base_url,
            model=args.model,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),  # type: ignore[arg-type]
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
            max_retries=0,  # retries are ours, inside the budget
        )
    else:
        from hia_chain.local import LocalChatModel

        local = LocalChatModel(
            temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
        )
        response = local
    kind = args.heuristic or ("learned" if args.base_url else "draft")
    if kind == "draft":
        from hia_chain.local import LocalChatModel
        from hia_chain.scorers.draft import DraftHeuristic

        drafter = local or LocalChatModel(
            temperature=args.temperature, max_tokens=64, seed=args.seed
        )
        heuristic: Any = DraftHeuristic(drafter, scorers, max_tokens=64)
    elif kind == "learned":
        from hia_chain.scorers.learned import LearnedHeuristic

        heuristic = LearnedHeuristic(fallback=InstructionHeuristic(objectives))
    else:
        heuristic = InstructionHeuristic(objectives)
    optimizer: Any = TemplateOptimizer()
    if local is not None:
        rewriter = LocalChatModel(temperature=0.9, max_tokens=200, seed=args.seed)
        optimizer = MixedOptimizer([TemplateOptimizer(), LLMPromptOptimizer(rewriter)])
    return AlignedChatModel(
        model=response,
        objectives=objectives,
        scorers=scorers,
        heuristic=heuristic,
        optimizer=optimizer,
        goal=goal,
        budget=args.budget,
        search=args.search,
        filter=args.filter,
        reward=args.reward,
        candidates_per_round=args.candidates,
        seed=args.seed,
        max_tokens=args.max_tokens,
    )


def _run_align(args: argparse.Namespace) -> int:
    from hia_chain._cli_display import Progress, render_result

    goal = parse_goal(args.goal) or {"verbosity": 1.0}
    aligned = _build_aligned(args, goal)
    started = time.perf_counter()
    progress = Progress(enabled=not args.json)
    with progress:
        message = aligned.invoke(args.prompt, config={"callbacks": [progress.handler]})
    trace = message.response_metadata["hia"]
    seconds = time.perf_counter() - started
    if args.json:
        out = {
            "answer": message.text,
            "reward": trace["reward"],
            "scores": trace["scores"],
            "goal": trace["goal"],
            "calls": trace["calls"],
            "budget": trace["budget"],
            "search": trace["search"],
            "reward_function": trace["reward_function"],
            "budget_exhausted": trace["budget_exhausted"],
            "usage": trace["usage"],
            "seconds": round(seconds, 3),
            "candidates": [
                {
                    k: c[k]
                    for k in (
                        "prompt",
                        "origin",
                        "predicted",
                        "measured",
                        "reward",
                        "sent",
                        "rejected",
                    )
                }
                for c in trace["candidates"]
            ],
        }
        print(json.dumps(out, indent=2))
    else:
        render_result(message.text, trace, seconds)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hia-chain`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HIAError as exc:
        print(f"hia-chain: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
