"""``hia-chain align``: answer a prompt aligned to a goal within a call budget (HIA).

::

    hia-chain align "Explain how vaccines work." --goal verbosity=1 --goal complexity=1 --budget 2

Without ``--json`` it shows the prompt, every candidate (the instructions it adds, predicted
and measured scores, reward, why it was rejected) and the chosen answer; with ``--json`` the
same as one object.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from hia_chain.cli.options import (
    add_endpoint,
    add_goal,
    add_json,
    add_sampling,
    objectives_epilog,
    paragraph,
)
from hia_chain.factory import DEFAULT_HEURISTIC, HEURISTICS
from hia_chain.goals import REWARD_NAMES, parse_goal
from hia_chain.search.types import FILTERS, SEARCHES, SearchSettings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from hia_chain.aligned import AlignedChatModel
    from hia_chain.cli.display import Progress
    from hia_chain.cli.options import Subparsers

__all__ = ["DEFAULT_GOAL", "OPTIMIZERS", "register", "run"]

DEFAULT_GOAL: dict[str, float] = {"verbosity": 1.0}
"""The goal when no ``--goal`` is given: two or three sentences (about 30 words)."""

OPTIMIZERS = ("template", "llm", "mixed")
"""Who proposes rewrites: the template optimizer, the local model, or both."""


def register(sub: Subparsers) -> None:
    """Add ``align`` to the ``hia-chain`` subcommands."""
    p = sub.add_parser(
        "align",
        help="Answer a prompt aligned to a goal within a call budget (HIA).",
        description=paragraph(
            "Propose rewrites of the prompt toward the goal, predict their scores without "
            "calling the model, send the most promising --budget of them, keep the best answer."
        ),
        epilog=objectives_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt")
    add_goal(p, DEFAULT_GOAL)
    library = SearchSettings()  # every default below is the library's own
    p.add_argument(
        "--budget",
        type=int,
        default=library.budget,
        metavar="N",
        help="response-model calls (default %(default)s)",
    )
    p.add_argument("--search", choices=SEARCHES, default=library.search, help="default %(default)s")
    p.add_argument("--filter", choices=FILTERS, default=library.filter, help="default %(default)s")
    p.add_argument(
        "--reward", choices=REWARD_NAMES, default=library.reward, help="default %(default)s"
    )
    p.add_argument(
        "--heuristic",
        choices=HEURISTICS,
        help="stage-1 heuristic: instruction (free), learned (free; learns this model "
        "online), draft (the local model drafts every candidate: slow); default "
        f"{DEFAULT_HEURISTIC}, or learned with --heuristic-state",
    )
    p.add_argument(
        "--heuristic-state",
        metavar="FILE",
        help="warm start for the learned heuristic, written by `hia-chain calibrate`",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="template",
        help="who proposes rewrites: template (default; free, instant), llm (the local model "
        "rewrites: slow on CPU), mixed (both)",
    )
    p.add_argument(
        "--candidates",
        type=int,
        metavar="N",
        help="candidate prompts proposed per round (default max(8, 2 × calls per round))",
    )
    add_sampling(p, max_tokens=160)
    add_endpoint(p)
    add_json(p)
    p.set_defaults(func=run)


def build_aligned(
    args: argparse.Namespace, goal: dict[str, float], response: BaseChatModel
) -> AlignedChatModel:
    """The :class:`AlignedChatModel` the flags describe, over ``response``."""
    from hia_chain.aligned import AlignedChatModel
    from hia_chain.factory import heuristic
    from hia_chain.optimizer import (
        LLMPromptOptimizer,
        MixedOptimizer,
        PromptOptimizer,
        TemplateOptimizer,
    )
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    objectives = list(BUILTIN_OBJECTIVES.values())
    kind = args.heuristic or ("learned" if args.heuristic_state else DEFAULT_HEURISTIC)
    local = None if args.base_url else response  # the embedded model doubles as helper
    optimizer: PromptOptimizer = TemplateOptimizer()
    if args.optimizer != "template":
        rewriter = LLMPromptOptimizer(local or _local_model(0.9, 200, args.seed))
        optimizer = rewriter if args.optimizer == "llm" else MixedOptimizer([optimizer, rewriter])
    return AlignedChatModel(
        model=response,
        objectives=objectives,
        scorers=builtin_scorers(list(BUILTIN_OBJECTIVES)),
        heuristic=heuristic(
            kind,
            objectives,
            state=args.heuristic_state,
            drafter=local if kind == "draft" else None,
        ),
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


def _local_model(temperature: float, max_tokens: int, seed: int | None) -> BaseChatModel:
    from hia_chain.local.chat_model import LocalChatModel

    return LocalChatModel(temperature=temperature, max_tokens=max_tokens, seed=seed)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain align``."""
    from hia_chain.factory import response_model

    progress: Progress | None = None
    if not args.json:  # the display needs rich ([cli] extra); --json does not
        from hia_chain.cli.display import Progress

        progress = Progress()
    goal = parse_goal(args.goal) or dict(DEFAULT_GOAL)
    response = response_model(
        args.base_url,
        args.model,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    aligned = build_aligned(args, goal, response)
    started = time.perf_counter()
    if progress is None:
        message = aligned.invoke(args.prompt)
    else:
        with progress:
            message = aligned.invoke(args.prompt, config={"callbacks": [progress.handler]})
    trace: dict[str, Any] = message.response_metadata["hia"]
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps(as_json(args.prompt, message.text, trace, seconds), indent=2))
    else:
        from hia_chain.cli.display import render_result

        render_result(args.prompt, message.text, trace, seconds)
    return 0


_CANDIDATE_KEYS = (
    "id",
    "round",
    "origin",
    "prompt",
    "placement",
    "system",
    "max_tokens",
    "rejected",
    "predicted",
    "predicted_reward",
    "sent",
    "measured",
    "reward",
    "error",
)


def as_json(prompt: str, answer: str, trace: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What ``--json`` prints: the answer, the chosen candidate's id, and every candidate with
    its id, prompt, system instruction and output cap, predicted scores and reward, answer
    and measured scores and reward."""
    return {
        "prompt": prompt,
        "answer": answer,
        "chosen": trace["best"],
        "reward": trace["reward"],
        "scores": trace["scores"],
        "goal": trace["goal"],
        "calls": trace["calls"],
        "budget": trace["budget"],
        "search": trace["search"],
        "filter": trace["filter"],
        "reward_function": trace["reward_function"],
        "budget_exhausted": trace["budget_exhausted"],
        "stopped": trace["stopped"],
        "usage": trace["usage"],
        "seconds": round(seconds, 3),
        "candidates": [
            {**{k: c.get(k) for k in _CANDIDATE_KEYS}, "answer": c.get("response")}
            for c in trace["candidates"]
        ],
    }
