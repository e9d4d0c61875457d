"""A warm start for the learned heuristic: spend a fixed number of calls, learn the model.

A cold learned heuristic is its fallback (the instruction heuristic: "one short sentence"
means verbosity 0) until stage 2 has measured enough answers, so a user's first requests are
filtered by a guess. Calibration pays for that learning up front, once per response model:
it runs unfiltered best-of-N prompt search (random survivors, so every kind of instruction
gets measured, not only the ones a filter would pick) on the package's own calibration
prompts with random goals, and every measured answer becomes an observation. The saved state
warm-starts :class:`~hia_chain.scorers.learned.LearnedHeuristic` (``LearnedHeuristic.load``).

The calibration prompts ship with the package and are never benchmark prompts, so a warm
start cannot leak a benchmark's report split into the filter.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files

from hia_chain.budget import Budget
from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.scorers.base import ReferenceScorer
from hia_chain.scorers.learned import LearnedHeuristic
from hia_chain.search import HIASearch, SearchSettings
from hia_chain.search.types import Responder

__all__ = ["CalibrationReport", "calibrate", "calibration_prompts"]


def calibration_prompts() -> list[str]:
    """The shipped calibration prompts (the package's own text, of many kinds)."""
    text = files("hia_chain.data").joinpath("calibration_prompts.jsonl").read_text()
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class CalibrationReport:
    """What a calibration spent and learned."""

    calls: int
    observations: int
    requests: int
    failed_requests: int


def random_goal(objectives: Sequence[Objective], rng: random.Random) -> dict[str, float]:
    """One to three objectives with integer-grid targets: the goals users send."""
    k = rng.randint(1, min(3, len(objectives)))
    chosen = rng.sample(list(objectives), k)
    return {o.name: float(rng.choice(range(int(o.low), int(o.high) + 1))) for o in chosen}


async def calibrate(
    heuristic: LearnedHeuristic,
    respond: Responder,
    objectives: Sequence[Objective],
    scorers: Sequence[ReferenceScorer],
    *,
    calls: int,
    calls_per_prompt: int = 4,
    candidates_per_round: int = 8,
    prompts: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> CalibrationReport:
    """Spend at most ``calls`` response calls teaching ``heuristic`` (one shared cap).

    Raises:
        ConfigError: ``calls`` or ``calls_per_prompt`` is below 1, or no prompts.
    """
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        msg = f"`calls` must be an integer >= 1, got {calls!r}."
        raise ConfigError(msg)
    if calls_per_prompt < 1:
        msg = f"`calls_per_prompt` must be >= 1, got {calls_per_prompt!r}."
        raise ConfigError(msg)
    pool = list(prompts if prompts is not None else calibration_prompts())
    if not pool:
        raise ConfigError("No calibration prompts: pass at least one.")
    rng = random.Random(seed)
    search = HIASearch(objectives, scorers, TemplateOptimizer(), heuristic)
    cap = Budget(calls=calls)
    requests = failed = 0
    while (left := calls - (await cap.ausage()).calls) > 0:
        budget = min(calls_per_prompt, left)
        settings = SearchSettings(
            search="bon",
            filter="random",
            budget=budget,
            candidates_per_round=max(candidates_per_round, budget),
            seed=rng.randrange(2**31),
        )
        prompt = pool[requests % len(pool)]
        requests += 1
        try:
            await search.run(prompt, random_goal(objectives, rng), respond, settings, shared=cap)
        except Exception:
            if heuristic.n_observations == 0 or (await cap.ausage()).calls == calls - left:
                # Nothing ever worked (a bad URL, key or model), or this failure spent
                # nothing (a refused connection): retrying would pay for nothing or loop.
                raise
            failed += 1  # what it sent is charged to `cap`; go on with the next prompt
        progress((await cap.ausage()).calls, calls)
    spent = (await cap.ausage()).calls
    return CalibrationReport(spent, heuristic.n_observations, requests, failed)
