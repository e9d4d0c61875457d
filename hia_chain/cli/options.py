"""Flags that several subcommands share, spelled and explained once.

A flag that several subcommands take has one spelling in all of them, but not every
subcommand takes every flag: ``--goal`` is in ``align``, ``ivg`` and ``serve`` (``bench``
sets its own goals); ``--max-tokens``, ``--temperature`` and ``--seed`` in the commands that
sample; ``--base-url``/``--model`` in ``align``, ``calibrate`` and ``bench`` (``ivg``'s
``--model`` is a local folder, and ``serve`` names its endpoint ``--upstream-base-url`` and
``--upstream-model``); ``--json`` in ``align`` and ``ivg``. The objective names and levels in
the help come from the built-in objectives themselves.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hia_chain.scorers.text import BUILTIN_OBJECTIVES

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
    """What ``add_subparsers()`` returns: each subcommand module's ``register`` takes it."""

__all__ = [
    "add_endpoint",
    "add_goal",
    "add_json",
    "add_sampling",
    "deprecated_alias",
    "finite",
    "format_goal",
    "objectives_epilog",
    "paragraph",
]


def finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def format_goal(goal: Mapping[str, float]) -> str:
    """``{"verbosity": 1.0}`` as the flags that give it: ``verbosity=1``."""
    return " ".join(f"{k}={v:g}" for k, v in goal.items())


def paragraph(text: str, width: int = 78) -> str:
    """``text`` wrapped for a raw-formatted help section (description or epilog)."""
    return textwrap.fill(text, width)


def objectives_epilog(width: int = 78) -> str:
    """Every built-in objective with what each level means (its scorer's scale), for --help."""
    lines = ["goal objectives (--goal NAME=LEVEL; LEVEL from 0 to 4, decimals allowed):"]
    for name, objective in BUILTIN_OBJECTIVES.items():
        levels = objective.description.split(" Steer it")[0]  # less the optimizer's hint
        lines.append(f"  {name}")
        lines += textwrap.wrap(levels, width, initial_indent=" " * 4, subsequent_indent=" " * 4)
    return "\n".join(lines)


def add_goal(
    p: argparse.ArgumentParser, default: Mapping[str, float] | None, *, without: str = ""
) -> None:
    """``--goal NAME=LEVEL`` (repeatable), with the objectives and the default in its help.

    Args:
        p: The subcommand's parser (give it ``epilog=objectives_epilog()`` and a raw
            description formatter so the levels print as written).
        default: The goal used when no ``--goal`` is given, or ``None`` when there is none.
        without: What happens without a goal, when ``default`` is ``None``.
    """
    names = ", ".join(BUILTIN_OBJECTIVES)
    fallback = f"default {format_goal(default)}" if default else without
    p.add_argument(
        "--goal",
        action="append",
        metavar="NAME=LEVEL",
        help=f"repeatable; NAME is one of {names}, LEVEL 0–4 (levels below); {fallback}",
    )


def add_sampling(p: argparse.ArgumentParser, max_tokens: int, seed: int | None = None) -> None:
    """``--max-tokens``, ``--temperature`` and ``--seed`` of the response model."""
    p.add_argument(
        "--max-tokens",
        type=int,
        default=max_tokens,
        metavar="N",
        help=f"most tokens per answer (default {max_tokens})",
    )
    p.add_argument(
        "--temperature", type=finite, default=0.7, metavar="T", help="sampling (default 0.7)"
    )
    unseeded = "unseeded" if seed is None else str(seed)
    p.add_argument(
        "--seed", type=int, default=seed, metavar="N", help=f"sampling seed (default {unseeded})"
    )


def add_endpoint(
    p: argparse.ArgumentParser, *, default: str = "the embedded SmolLM2, in-process"
) -> None:
    """``--base-url`` and ``--model``: where the response model runs (``default`` without)."""
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="any OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) as the response "
        f"model; default: {default}",
    )
    p.add_argument("--model", metavar="NAME", help="the model name at --base-url")


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``: one JSON object on stdout instead of the human display."""
    p.add_argument("--json", action="store_true", help="print one JSON object")


class _DeprecatedAlias(argparse.Action):
    """A renamed flag's old spelling: still accepted, hidden from ``--help``, names the new one."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.new = kwargs.pop("new")
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"hia-chain: {option_string} is renamed {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(p: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden spelling of ``new`` (same ``dest``), with a notice on stderr."""
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, **kwargs)
