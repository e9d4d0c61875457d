"""``hia-chain ivg``: value-guided decoding of the local model from the shell (IVG).

::

    hia-chain ivg "Continue this movie review: The plot" --goal sentiment=4 \\
        --guidance both --beam-width 2 --successors 2 --chunk-length 8 --beta 2 --json

It builds an :class:`~hia_chain.local.IVGChatModel` (``[local]`` extra, imported only when
the command runs), invokes it and prints. The final text is scored by the built-in scorers of
the goal's objectives, so ``--json`` shows what the guidance achieved.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from hia_chain.cli.options import (
    add_goal,
    add_json,
    add_sampling,
    deprecated_alias,
    finite,
    objectives_epilog,
)
from hia_chain.errors import ConfigError
from hia_chain.local.settings import GUIDANCE_MODES

if TYPE_CHECKING:
    from hia_chain.cli.options import Subparsers

__all__ = ["DEFAULT_GOAL", "register", "run"]

DEFAULT_GOAL: dict[str, float] = {"sentiment": 4.0}
"""The goal when no ``--goal`` is given: very positive, the IVG paper's steering task."""


def register(sub: Subparsers) -> None:
    """Add ``ivg`` to the ``hia-chain`` subcommands."""
    p = sub.add_parser(
        "ivg",
        help="Decode the local model with token- and/or chunk-level value guidance (IVG).",
        epilog=objectives_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt")
    add_goal(p, DEFAULT_GOAL)
    p.add_argument(
        "--guidance",
        choices=GUIDANCE_MODES,
        default="both",
        help="token: reweigh each token by its value; chunk: beam search over chunks; "
        "both (default); none: plain sampling",
    )
    p.add_argument("--beam-width", type=int, default=2, metavar="W", help="beams kept (default 2)")
    p.add_argument("--successors", type=int, default=2, metavar="K", help="per beam (default 2)")
    p.add_argument(
        "--chunk-length", type=int, default=30, metavar="L", help="tokens per chunk; 0 = one chunk"
    )
    p.add_argument("--beta", type=finite, default=2.0, help="token guidance strength (default 2)")
    add_sampling(p, max_tokens=128)
    deprecated_alias(p, "--max-new-tokens", "--max-tokens", type=int)
    p.add_argument(
        "--repetition-penalty",
        type=finite,
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
    p.add_argument(
        "--model",
        metavar="FOLDER",
        help="a local transformers model folder (default: the embedded SmolLM2)",
    )
    deprecated_alias(p, "--model-path", "--model")
    add_json(p)
    p.set_defaults(func=run)


def _score(prompt: str, text: str, goal: dict[str, float]) -> tuple[dict[str, float], float]:
    """Built-in scores of the answer ``text`` to ``prompt`` on the goal's objectives, and the
    euclidean reward."""
    from hia_chain.asyncutil import run_sync
    from hia_chain.goals import get_reward_function
    from hia_chain.scorers import score_responses
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers

    scorers = builtin_scorers(list(goal))
    merged = run_sync(functools.partial(score_responses, scorers, prompt, [text]))
    scores = merged.rows[0] or {}  # None only when a scorer's budget ran out: these have none
    reward = get_reward_function("euclidean", list(BUILTIN_OBJECTIVES.values()))
    return scores, reward(goal, scores)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain ivg``.

    Raises:
        ConfigError: a bad goal or flag (exit code 2).
    """
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
        model_path=args.model,
        guidance=args.guidance,
        goal=goal,
        beta=args.beta,
        beam_width=args.beam_width,
        successors_per_beam=args.successors,
        chunk_tokens=args.chunk_length or None,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        **repetition,
    )
    started = time.perf_counter()
    message = llm.invoke(args.prompt)
    seconds = time.perf_counter() - started
    trace: dict[str, Any] = message.response_metadata["ivg"]
    scores, reward = _score(args.prompt, message.text, goal)
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
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(message.text)
    shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
    line = f"[{trace['guidance']}] {trace['new_tokens']} tokens in {seconds:.1f}s; {shown}"
    print(f"{line}; reward {reward:.3f}", file=sys.stderr)
    return 0
