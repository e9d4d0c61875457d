"""A zero-cost heuristic that reads the instructions a candidate adds to the prompt.

If a candidate contains a known instruction phrase for an objective (the ones the template
optimizer composes, e.g. "Answer in one short sentence." for verbosity 0), it predicts the
level that phrase aims at; otherwise it predicts ``prior`` (what the model does unprompted,
the scale's midpoint by default). A candidate sent with an output cap cannot be longer than
the cap allows, so its verbosity prediction is at most the cap's level (about 0.75 words per
token). Crude on its own: models miss targets systematically.
That is what :class:`~hia_chain.scorers.learned.LearnedHeuristic` corrects when it uses this
as its prior and learns the model's actual response to each instruction online.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hia_chain.context import RunContext
from hia_chain.goals import Objective
from hia_chain.instructions import PHRASES, added_text, output_cap
from hia_chain.scorers.base import Heuristic, Prediction
from hia_chain.scorers.text import VerbosityScorer

__all__ = ["InstructionHeuristic"]

WORDS_PER_TOKEN = 0.75
"""English words per token of a BPE tokenizer, to turn an output cap into a length."""


class InstructionHeuristic(Heuristic):
    """Predicts the level of the instruction phrases a candidate adds.

    Args:
        objectives: Objectives to map grid levels onto their scales.
        prior: Prediction per objective when no known phrase is present.
        phrases: Phrase bank per objective and 0–4 level (default: the template optimizer's).
    """

    name = "instruction"

    def __init__(
        self,
        objectives: Sequence[Objective],
        prior: Mapping[str, float] | None = None,
        phrases: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        self.objectives = {o.name: o for o in objectives}
        self.prior = dict(prior or {})
        self.phrases = {k: [list(v) for v in levels] for k, levels in (phrases or PHRASES).items()}

    def _predict_one(self, original: str, candidate: str, name: str) -> tuple[float, float]:
        obj = self.objectives.get(name)
        lo, hi = (obj.low, obj.high) if obj else (0.0, 4.0)
        added = added_text(original, candidate).lower()
        levels = [
            lv
            for lv, variants in enumerate(self.phrases.get(name, []))
            if any(v.lower() in added for v in variants)
        ]
        if levels:
            grid = sum(levels) / len(levels)
            mean, spread = lo + (hi - lo) * grid / 4, (hi - lo) / 8
        else:
            mean, spread = self.prior.get(name, (lo + hi) / 2), (hi - lo) / 4
        cap = output_cap(candidate)
        if name == "verbosity" and cap is not None:
            mean = min(mean, VerbosityScorer(low=lo, high=hi).level(WORDS_PER_TOKEN * cap))
        return mean, spread

    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        out = []
        for cand in candidates:
            pairs = {n: self._predict_one(original, cand, n) for n in objectives}
            out.append(
                Prediction(
                    scores={n: m for n, (m, _) in pairs.items()},
                    uncertainty={n: s for n, (_, s) in pairs.items()},
                )
            )
        return out
