"""The two scorer interfaces of HIA.

* A :class:`ReferenceScorer` measures responses, r(P, y): this is the ground truth the search
  optimises and the final answer is chosen by.
* A :class:`Heuristic` predicts, r̂(c), how a candidate *prompt* will score once sent, without
  calling the response model: it is the stage-1 filter. Heuristics may learn from the
  measured scores that stage 2 returns (:meth:`Heuristic.observe`).

Both are async and batch-first (a list in, a list out, same length and order), so a scorer
that runs a model can batch, and one that does not pays nothing for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, RewardModelError
from hia_chain.goals import validate_scores

__all__ = [
    "Heuristic",
    "MergedScores",
    "Prediction",
    "ReferenceScorer",
    "check_batch",
    "score_responses",
]


class ReferenceScorer(ABC):
    """Scores responses to the user's original prompt on one or more objectives."""

    objectives: tuple[str, ...]
    """The objective names this scorer produces."""
    model_calls_per_item: int = 0
    """Model calls made per response scored (an LLM judge: 1), for dry-run planning."""

    @abstractmethod
    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        """Return one ``{objective: score}`` per response, on each objective's scale."""


@dataclass(frozen=True)
class Prediction:
    """A heuristic's guess at a prompt's scores, with an optional per-objective std-dev."""

    scores: Mapping[str, float]
    uncertainty: Mapping[str, float] = field(default_factory=dict)


class Heuristic(ABC):
    """Predicts the reference scores a candidate prompt's response will get."""

    name: str = "heuristic"
    model_calls_per_item: int = 0
    """Model calls made per candidate predicted (a drafter: 1), for dry-run planning."""

    @abstractmethod
    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        """Return one prediction per candidate prompt, covering every name in ``objectives``."""

    def observe(self, original: str, candidate: str, measured: Mapping[str, float]) -> None:  # noqa: B027
        """Learn from a measured outcome of stage 2. Stateless heuristics ignore it."""


def check_batch(
    results: Sequence[Mapping[str, float]], expected: int, names: Sequence[str], *, source: str
) -> list[dict[str, float]]:
    """Validate a scorer's batch output: right count, every objective, finite values.

    Raises:
        RewardModelError: wrong count, missing key or NaN.
    """
    if len(results) != expected:
        msg = f"{source} returned {len(results)} results for {expected} inputs."
        raise RewardModelError(msg)
    return [validate_scores(r, names, source=source) for r in results]


@dataclass(frozen=True)
class MergedScores:
    """Several scorers' scores of one batch, merged into one row per response."""

    rows: list[dict[str, float] | None]
    """``{objective: score}`` per response, in order; ``None`` where a scorer's budget ran
    out before it graded that response (the response is then not measured)."""
    stopped: str | None = None
    """Why scoring stopped short (a scorer's budget ran out), else ``None``."""


async def score_responses(
    scorers: Sequence[ReferenceScorer],
    prompt: str,
    responses: Sequence[str],
    objectives: Collection[str] | None = None,
    context: RunContext | None = None,
) -> MergedScores:
    """Score ``responses`` to ``prompt`` with every scorer and merge the scores per response.

    Each objective comes from the first scorer that produces it, so the order of ``scorers``
    is their priority and a scorer with nothing left to add is not called (a judge after the
    free text metrics is asked only for what they lack). Each output is validated.

    Args:
        scorers: Reference scorers, in priority order.
        prompt: What the user asked (responses are judged against it).
        responses: The texts to score.
        objectives: The objectives wanted (default: every scorer's). One that no scorer
            produces is absent from the rows: check coverage before spending anything.
        context: Passed to each scorer (its budget pays for judge calls).

    Returns:
        The merged rows; when a scorer's budget runs out, the responses it graded before
        (``BudgetExceededError.partial``) keep their rows, the others get ``None``, and the
        remaining scorers still run.

    Raises:
        RewardModelError: a scorer returned the wrong count, a missing or non-finite score.
    """
    rows: list[dict[str, float] | None] = [{} for _ in responses]
    stopped = None
    done: set[str] = set()
    for scorer in scorers if responses else ():
        wanted = [
            n
            for n in scorer.objectives
            if n not in done and (objectives is None or n in objectives)
        ]
        if not wanted:
            continue
        done.update(wanted)
        source = type(scorer).__name__
        try:
            results: list[dict[str, float] | None] = list(
                check_batch(
                    await scorer.ascore(prompt, responses, context),
                    len(responses),
                    wanted,
                    source=source,
                )
            )
        except BudgetExceededError as exc:
            stopped = str(exc)
            partial = exc.partial if exc.partial and len(exc.partial) == len(responses) else None
            results = [
                None if r is None else validate_scores(r, wanted, source=source)
                for r in (partial or [None] * len(responses))
            ]
        for i, scores in enumerate(results):
            row = rows[i]
            if row is not None and scores is not None:
                row.update(scores)
            else:
                rows[i] = None  # this scorer could not grade it: not measured
    return MergedScores(rows, stopped)
