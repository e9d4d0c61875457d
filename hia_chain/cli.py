"""The ``hia-chain`` command: align a prompt, steer local decoding, run the benchmark.

Thin on purpose: it parses flags, builds library objects and prints. Nothing runs at import.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from hia_chain.errors import ConfigError
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
        choices=["learned", "instruction", "draft"],
        default="learned",
        help="stage-1 heuristic: learned (default; free, warm-started by --heuristic-state), "
        "instruction (free), draft (the local model drafts every candidate: slow)",
    )
    p.add_argument(
        "--heuristic-state",
        metavar="FILE",
        help="warm start for the learned heuristic, written by `hia-chain calibrate`",
    )
    p.add_argument(
        "--optimizer",
        choices=["template", "llm", "mixed"],
        default="template",
        help="who proposes rewrites: template (default; free, instant), llm (the local model "
        "rewrites: slow on CPU), mixed (both)",
    )
    p.add_argument("--candidates", type=int, default=None, help="N candidates per round")
    p.add_argument("--max-tokens", type=int, default=160, help="response tokens per call")
    p.add_argument("--temperature", type=_finite, default=0.7)
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
    _add_calibrate(sub)
    try:
        from hia_chain.local._ivg_cli import register as register_ivg
    except ImportError:
        pass
    else:
        register_ivg(sub)
    from hia_chain.bench.cli import register as register_bench

    register_bench(sub)
    from hia_chain.server.cli import register as register_serve

    register_serve(sub)
    return parser


def _response_model(args: argparse.Namespace) -> Any:
    """``ChatOpenAI`` at ``--base-url``, else the embedded model in-process."""
    if args.base_url:
        if not args.model:
            raise ConfigError("--base-url needs --model NAME (the model to ask for there).")
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=args.base_url,
            model=args.model,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),  # type: ignore[arg-type]
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
            max_retries=0,  # retries are ours, inside the budget
        )
    from hia_chain.local import LocalChatModel

    return LocalChatModel(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)


def _build_aligned(args: argparse.Namespace, goal: dict[str, float]) -> Any:
    from hia_chain.aligned import AlignedChatModel
    from hia_chain.optimizer import LLMPromptOptimizer, MixedOptimizer, TemplateOptimizer
    from hia_chain.scorers.instruction import InstructionHeuristic
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    objectives = list(BUILTIN_OBJECTIVES.values())
    scorers = builtin_scorers(list(BUILTIN_OBJECTIVES))
    response = _response_model(args)
    local = None if args.base_url else response
    if args.heuristic == "draft":
        from hia_chain.local import LocalChatModel
        from hia_chain.scorers.draft import DraftHeuristic

        drafter = local or LocalChatModel(
            temperature=args.temperature, max_tokens=64, seed=args.seed
        )
        heuristic: Any = DraftHeuristic(drafter, scorers, max_tokens=64)
    elif args.heuristic == "learned":
        heuristic = _learned(objectives, args.heuristic_state)
    else:
        heuristic = InstructionHeuristic(objectives)
    optimizer: Any = TemplateOptimizer()
    if args.optimizer != "template":
        from hia_chain.local import LocalChatModel

        rewriter = LLMPromptOptimizer(
            local or LocalChatModel(temperature=0.9, max_tokens=200, seed=args.seed)
        )
        optimizer = rewriter if args.optimizer == "llm" else MixedOptimizer([optimizer, rewriter])
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


def _learned(objectives: list[Any], state: str | None) -> Any:
    """The learned heuristic over the instruction heuristic, warm-started from ``state``."""
    from hia_chain.scorers.instruction import InstructionHeuristic
    from hia_chain.scorers.learned import LearnedHeuristic

    fallback = InstructionHeuristic(objectives)
    if state:
        return LearnedHeuristic.load(state, fallback=fallback, objectives=objectives)
    return LearnedHeuristic(fallback=fallback, objectives=objectives)


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="Warm-start the learned heuristic: spend N calls on the shipped calibration prompts.",
    )
    p.add_argument("--calls", type=int, required=True, help="response-model calls to spend")
    p.add_argument("--out", required=True, help="where to write the state (JSON)")
    p.add_argument("--base-url", help="any OpenAI-compatible endpoint as the response model")
    p.add_argument("--model", help="model name at --base-url")
    p.add_argument("--max-tokens", type=int, default=96, help="response tokens per call")
    p.add_argument("--temperature", type=_finite, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_calibrate)


def _run_calibrate(args: argparse.Namespace) -> int:
    import anyio

    from hia_chain.calibration import calibrate
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers
    from hia_chain.search.types import Response

    if args.calls < 1:
        raise ConfigError("--calls must be >= 1.")
    objectives = list(BUILTIN_OBJECTIVES.values())
    llm = _response_model(args)
    heuristic = _learned(objectives, None)

    async def respond(prompt: str) -> Response:
        return Response.from_message(await llm.ainvoke(prompt))

    def progress(done: int, total: int) -> None:
        print(f"\rcalibrate: {done}/{total} calls", end="", file=sys.stderr, flush=True)

    report = anyio.run(
        lambda: calibrate(
            heuristic,
            respond,
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


def _finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hia-chain`` console script.

    Every failure is one line on stderr naming the problem and the fix; exit codes: 2 bad
    input, 1 runtime failure, 130 interrupted (``HIA_CHAIN_DEBUG=1`` shows tracebacks).
    """
    from hia_chain._cli_errors import EXIT_INTERRUPTED, check_text, describe

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in ("prompt", "model", "base_url"):
            value = getattr(args, name, None)
            if isinstance(value, str):
                check_text(
                    value, f"--{name.replace('_', '-')}" if name != "prompt" else "The prompt"
                )
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


if __name__ == "__main__":
    sys.exit(main())
