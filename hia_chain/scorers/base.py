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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hia_chain.context import RunContext
from hia_chain.errors import RewardModelError
from hia_chain.goals import validate_scores

__all__ = ["Heuristic", "Prediction", "ReferenceScorer", "check_batch"]


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
