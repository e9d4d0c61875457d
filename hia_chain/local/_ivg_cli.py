"""The ``hia-chain ivg`` subcommand: value-guided decoding of the local model from the shell.

::

    hia-chain ivg "Continue this movie review: The plot" --goal sentiment=4 \\
        --guidance both --beam-width 2 --successors 2 --chunk-length 8 --beta 2 --json

Thin on purpose: it parses flags, builds an :class:`IVGChatModel`, invokes it and prints. The
final text is scored by the built-in scorers of the goal's objectives (``sentiment=4`` when no
goal is given), so ``--json`` shows what the guidance achieved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from hia_chain.errors import ConfigError, HIAError

DEFAULT_GOAL = {"sentiment": 4.0}

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ivg`` subcommand to a ``hia-chain`` style argparse parser."""
    p = subparsers.add_parser(
        "ivg", help="Decode the local model with token- and/or chunk-level value guidance (IVG)."
    )
    p.add_argument("prompt")
    p.add_argument(
        "--goal",
        action="append",
        metavar="NAME=VALUE",
        help="repeatable; 0–4 scale (default sentiment=4, the IVG paper's steering task)",
    )
    p.add_argument("--guidance", choices=["none", "token", "chunk", "both"], default="both")
    p.add_argument("--beam-width", type=int, default=2, metavar="W", help="beams kept (default 2)")
    p.add_argument("--successors", type=int, default=2, metavar="K", help="per beam (default 2)")
    p.add_argument(
        "--chunk-length", type=int, default=30, metavar="L", help="tokens per chunk; 0 = one chunk"
    )
    p.add_argument("--beta", type=float, default=2.0, help="token guidance strength (default 2)")
    p.add_argument("--max-new-tokens", type=int, default=128, metavar="T")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=None,
        metavar="P",
        help="penalty on tokens already in the prompt or answer; 1 = off (default 1.1)",
    )
    p.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=None,
        metavar="N",
        help="never repeat N tokens in a row; 0 = off (default 4)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--model-path", default=None, help="a transformers folder (default: embedded)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _score(text: str, goal: dict[str, float]) -> tuple[dict[str, float], float]:
    """Built-in scores of ``text`` on the goal's objectives and the euclidean reward."""
    from hia_chain.goals import get_reward_function
    from hia_chain.local.values import run_coroutine
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    scores: dict[str, float] = {}
    for scorer in builtin_scorers(list(goal)):
        scores.update(run_coroutine(lambda s=scorer: s.ascore("", [text]))[0])
    reward = get_reward_function("euclidean", list(BUILTIN_OBJECTIVES.values()))
    return scores, reward(goal, scores)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain ivg``; errors print one line to stderr and return 2."""
    try:
        return _run(args)
    except HIAError as exc:
        print(f"hia-chain ivg: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2


def _run(args: argparse.Namespace) -> int:
    from hia_chain.goals import parse_goal, validate_goal
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES

    goal = validate_goal(list(BUILTIN_OBJECTIVES.values()), parse_goal(args.goal) or DEFAULT_GOAL)
    if args.chunk_length < 0:
        msg = f"--chunk-length must be >= 0 (0 = one chunk to the end), got {args.chunk_length}."
        raise ConfigError(msg)
    from hia_chain.local.ivg_chat_model import IVGChatModel

    # unset flags keep IVGChatModel's defaults (the help text quotes them; a test checks)
    repetition = {
        k: v
        for k, v in (
            ("repetition_penalty", args.repetition_penalty),
            ("no_repeat_ngram_size", args.no_repeat_ngram),
        )
        if v is not None
    }
    llm = IVGChatModel(
        model_path=args.model_path,
        guidance=args.guidance,
        goal=goal,
        beta=args.beta,
        beam_width=args.beam_width,
        successors_per_beam=args.successors,
        chunk_tokens=args.chunk_length or None,
        max_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        **repetition,
    )
    started = time.perf_counter()
    message = llm.invoke(args.prompt)
    seconds = time.perf_counter() - started
    trace: dict[str, Any] = message.response_metadata["ivg"]
    scores, reward = _score(message.text, goal)
    if args.json:
        out = {
            "text": message.text,
            "scores": scores,
            "reward": reward,
            "goal": goal,
            "guidance": trace["guidance"],
            "repetition_penalty": trace["repetition_penalty"],
            "no_repeat_ngram_size": trace["no_repeat_ngram_size"],
            "new_tokens": trace["new_tokens"],
            "tokens_generated": trace["tokens_generated"],
            "seconds": round(seconds, 3),
            "tokens_per_second": round(trace["new_tokens"] / seconds, 2) if seconds else None,
            "seed": trace["seed"],
            "beams": trace["beams"],
        }
        print(json.dumps(out, ensure_ascii=False))  # noqa: T201
        return 0
    print(message.text)  # noqa: T201
    shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
    line = f"[{trace['guidance']}] {trace['new_tokens']} tokens in {seconds:.1f}s; {shown}"
    print(f"{line}; reward {reward:.3f}", file=sys.stderr)  # noqa: T201
    return 0
