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
_THRESHOLD = 0.95


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Change:
    """What a candidate adds to the original, computed once, compared to many.

    The words a candidate adds (and its whole prompt's words when it adds none), with a
    matcher holding their index, so comparing a new candidate against every kept one costs a
    cheap bound (lengths, shared words) per pair and a full diff only for likely duplicates.
    """

    def __init__(
        self, original: str, prompt: str, how: tuple[bool, int | None] = (False, None)
    ) -> None:
        self.added = _words(added_text(original, prompt))
        self.whole = [] if self.added else _words(prompt)
        self.how = how
        self._matcher = difflib.SequenceMatcher(b=self.added, autojunk=False)

    @classmethod
    def of(cls, original: str, c: Candidate) -> _Change:
        """A candidate's change; variants sent differently (placement, output cap) are never
        repeats of each other, however alike their texts."""
        return cls(original, c.text, (c.system is not None, c.max_tokens))

    def repeats(self, earlier: _Change, threshold: float = _THRESHOLD) -> bool:
        """Whether this change repeats ``earlier`` (see :func:`near_duplicate`)."""
        if self.how != earlier.how:
            return False
        if not self.added or not earlier.added:
            return self.added == earlier.added and self.whole == earlier.whole
        m = earlier._matcher
        m.set_seq1(self.added)
        return (
            m.real_quick_ratio() >= threshold
            and m.quick_ratio() >= threshold
            and m.ratio() >= threshold
        )


def near_duplicate(original: str, a: str, b: str, threshold: float = _THRESHOLD) -> bool:
    """Whether two candidates make the same change to ``original``.

    Compares what each adds to the original, in order, up to case and punctuation: on whole
    prompts, a short instruction added to a long request would look like a duplicate of the
    request itself, and "concise, not verbose" like "verbose, not concise".
    """
    return _Change(original, a).repeats(_Change(original, b), threshold)


def validate(original: str, fresh: Sequence[Candidate], seen: Sequence[Candidate]) -> None:
    """Mark junk rewrites and repeats of an earlier candidate as rejected."""
    kept = [_Change.of(original, c) for c in seen if c.rejected is None]
    for c in fresh:
        problem = (
            None if c.origin in ("original", "resample") else rewrite_problem(original, c.text)
        )
        if problem is not None:
            c.rejected = problem
            continue
        change = _Change.of(original, c)
        if any(change.repeats(k) for k in kept):
            c.rejected = "near-duplicate of an earlier candidate"
        else:
            kept.append(change)


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
    predictions = await heuristic.apredict(original, [c.text for c in pool], names, context)
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
