"""Stage 1, free: validate, de-duplicate and rank candidate prompts, keep the top K.

Nothing here calls the response model. Rejections are recorded on the candidate (never
silently dropped) so the trace shows why a proposal was not considered.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Sequence

from hia_chain.context import RunContext
from hia_chain.goals import Objective, RewardFunction
from hia_chain.instructions import added_text
from hia_chain.optimizer.base import rewrite_problem
from hia_chain.scorers.base import Heuristic, check_batch
from hia_chain.search.types import Candidate, FilterName

__all__ = ["near_duplicate", "select"]

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def near_duplicate(original: str, a: str, b: str, threshold: float = 0.95) -> bool:
    """Whether two candidates make the same change to ``original``.

    Compares what each adds to the original, in order, up to case and punctuation: on whole
    prompts, a short instruction added to a long request would look like a duplicate of the
    request itself, and "concise, not verbose" like "verbose, not concise".
    """
    wa, wb = _words(added_text(original, a)), _words(added_text(original, b))
    if not wa or not wb:
        return wa == wb and _words(a) == _words(b)
    return difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).ratio() >= threshold


def validate(original: str, fresh: Sequence[Candidate], seen: Sequence[Candidate]) -> None:
    """Mark junk rewrites and repeats of an earlier candidate as rejected."""
    kept: list[Candidate] = [c for c in seen if c.rejected is None]
    for c in fresh:
        problem = (
            None if c.origin in ("original", "resample") else rewrite_problem(original, c.prompt)
        )
        if problem is not None:
            c.rejected = problem
        elif any(near_duplicate(original, c.prompt, k.prompt) for k in kept):
            c.rejected = "near-duplicate of an earlier candidate"
        else:
            kept.append(c)


async def select(
    original: str,
    pool: Sequence[Candidate],
    k: int,
    *,
    filter: FilterName,
    heuristic: Heuristic | None,
    objectives: Sequence[Objective],
    goal: dict[str, float],
    reward: RewardFunction,
    rng: random.Random,
    exploration: float,
    context: RunContext | None,
) -> list[Candidate]:
    """Return the K candidates of ``pool`` to send, best first."""
    if k <= 0 or not pool:
        return []
    if filter == "order":
        return list(pool[:k])
    if filter == "random":
        return rng.sample(list(pool), min(k, len(pool)))
    if heuristic is None:
        msg = "filter='heuristic' needs a heuristic scorer."
        raise ValueError(msg)
    names = [o.name for o in objectives if o.name in goal]
    predictions = await heuristic.apredict(original, [c.prompt for c in pool], names, context)
    scores = check_batch(
        [p.scores for p in predictions], len(pool), names, source=f"heuristic {heuristic.name!r}"
    )
    by_name = {o.name: o for o in objectives}
    for c, p, s in zip(pool, predictions, scores, strict=True):
        c.predicted = s
        c.uncertainty = {k_: float(v) for k_, v in p.uncertainty.items()}
        c.predicted_reward = reward(goal, s)
        if exploration > 0 and c.uncertainty:
            # Optimism under uncertainty: move each prediction up to κσ toward its target.
            s = {
                n: by_name[n].clip(
                    v
                    + max(
                        -exploration * c.uncertainty.get(n, 0.0),
                        min(exploration * c.uncertainty.get(n, 0.0), goal[n] - v),
                    )
                )
                for n, v in s.items()
            }
        c.rank_key = reward.rank_key(goal, s)
    ranked = sorted(pool, key=lambda c: c.rank_key or (float("-inf"),) * 2, reverse=True)
    return ranked[:k]
