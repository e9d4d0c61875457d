"""One strategy per search kind, and why a search stopped.

A :class:`Strategy` says how a search kind spends its calls: how many a round sends, how many
of the best answers so far seed the next round, and whether rounds propose rewrites at all.
It is looked up once per request (:attr:`SearchSettings.strategy`), and both
:meth:`HIASearch.plan` and :meth:`HIASearch.run` read it, so the dry run cannot disagree
with the search.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["STRATEGIES", "Beam", "BestOfN", "Greedy", "Sample", "StopReason", "Strategy"]


class Strategy:
    """How a search kind spends its calls. The defaults are best-of-N's: one round of
    ``budget`` calls, seeded by the best answer if a later round is needed (a first round
    that found fewer candidates than calls); each kind overrides what differs."""

    name: str
    proposes = True
    """Rounds ask the optimizer for rewrites and stage 1 filters them; otherwise every call
    re-sends the original prompt (best-of-N sampling)."""

    def per_round(self, budget: int, beam_width: int) -> int:
        """K: response calls one round sends."""
        return budget

    def seeds(self, per_round: int) -> int:
        """How many of the best measured candidates seed the next round (one optimizer
        request each)."""
        return 1

    def max_rounds(self, budget: int) -> int:
        """Most rounds a request can take: a round that sends fewer calls than K (few new
        candidates, calls given back unsent) leaves the rest to the next round, one call at
        least per round; a search that does not propose sends everything in one round."""
        return budget if self.proposes else 1


class BestOfN(Strategy):
    """``bon``: one round of ``budget`` calls, the best of the filtered candidates."""

    name = "bon"


class Greedy(Strategy):
    """``greedy``: rounds of one call, each refined with the measured feedback of the best."""

    name = "greedy"

    def per_round(self, budget: int, beam_width: int) -> int:
        return 1


class Beam(Strategy):
    """``beam``: rounds of ``beam_width`` calls, each beam seeding the next round."""

    name = "beam"

    def per_round(self, budget: int, beam_width: int) -> int:
        return min(beam_width, budget)

    def seeds(self, per_round: int) -> int:
        return per_round


class Sample(Strategy):
    """``sample``: best-of-N sampling of the original prompt, the baseline without rewrites."""

    name = "sample"
    proposes = False


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (BestOfN(), Greedy(), Beam(), Sample())}
"""Every search kind by name, in the order the CLI lists them."""


class StopReason(str, Enum):
    """Why a search stopped (``SearchResult.stopped``); the value is what the trace shows."""

    BUDGET_SPENT = "budget spent"
    """Every call of the request's budget was made: the plan worked out."""
    BUDGET_EXHAUSTED = "budget exhausted"
    """A shared pool ran dry before the request's budget was spent."""
    REFUSED = "refused"
    """A budget refused a call of the optimizer, drafter or judge (their own caps, or a
    pool); ``SearchResult.stop_detail`` holds the refusal, and the trace shows it instead."""
    DEADLINE = "deadline"
    """The request's ``deadline`` passed."""
    NO_NEW_CANDIDATES = "no new candidates"
    """Stage 1 had nothing left to send."""
    MODEL_ERROR = "model error"
    """The response model failed before any answer worked (e.g. a bad key): stop paying."""
    TOOL_CALL = "tool call"
    """An agent step's first answer called a tool (the ``final`` step policy)."""
    PASSED = "passed"
    """An agent step passed through unaligned (a step policy's ``pass``)."""

    def __str__(self) -> str:
        return self.value
