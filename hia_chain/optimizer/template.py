"""A deterministic optimizer that needs no model: it composes goal-directed instructions.

For each objective it picks an instruction at the target's level on a 0–4 grid, plus
neighbouring intensities (one and two levels either side) and alternative phrasings, because
models follow instructions imprecisely: the heuristic filter, not this composer, decides
which intensity is likely to land on the target. With feedback (greedy and beam rounds) it
moves the level against the measured error: an answer that came out too long gets a
"shorter" instruction next round. When the prompt sets its own length or format ("at least
300 words", "in JSON"), the instructions say that the request's requirements come first.

Two more candidate dimensions, within the same call budget: where a candidate asks for a
short answer, the same candidate with an output cap, which keeps a model that ignores "one
sentence" short (on by default); and the same instructions sent as a system message, the
user's prompt unchanged (off by default). Defaults from the dev split of the bench prompts
(SmolLM2-135M behind ``transformers serve``, 8 prompts with verbosity goals 0 and 1, paired
with shared samples, euclidean reward): caps +0.057 ± 0.041 at B=2 and +0.090 ± 0.088 at B=1
with the learned filter; system placement −0.032 ± 0.061 at B=2, +0.012 ± 0.104 at B=1.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import replace

from hia_chain.context import RunContext
from hia_chain.goals import Objective
from hia_chain.instructions import PHRASES
from hia_chain.optimizer.base import OptimizeRequest, PromptOptimizer, Proposal
from hia_chain.optimizer.constraints import find_constraints, precedence_clause

__all__ = ["LENGTH_CAPS", "TemplateOptimizer"]

_OFFSETS = (0, -1, 1, -2, 2)
_VARIANTS_OF = 2
"""Combos (nearest the target first) that also get their placement and cap variants: a few,
so the variants do not crowd out the intensities the filter chooses among."""
LENGTH_CAPS: dict[int, int] = {0: 24, 1: 56}
"""Output cap (tokens) of a candidate asking for verbosity level 0 or 1: room for about 18
and 42 words (~0.75 words a token), above the ≈10 and ≈30 words those levels mean (see
:class:`~hia_chain.scorers.text.VerbosityScorer`), so an answer that follows the instruction
is rarely cut, and one that ignores it is cut near the target length. Chosen on the dev split;
a prompt that sets its own length or format gets no cap."""


def _to_grid(obj: Objective, value: float) -> float:
    return 4.0 * (value - obj.low) / obj.span


def _instruction(obj: Objective, level: int, variant: int) -> str:
    bank = PHRASES.get(obj.name)
    if bank is not None:
        return bank[level][variant % len(bank[level])]
    value = obj.low + obj.span * level / 4
    text = (
        f"Aim for a {obj.name} of about {value:g} on a scale from {obj.low:g} "
        f"({obj.low_label}) to {obj.high:g} ({obj.high_label})."
    )
    if variant % 2 and obj.description:
        text += f" ({obj.description})"
    return text


def _offsets_at(m: int, distance: int) -> Iterator[tuple[int, ...]]:
    """Every vector of ``m`` offsets from ``_OFFSETS`` whose absolute values sum to ``distance``."""
    if m == 0:
        if distance == 0:
            yield ()
        return
    for first in _OFFSETS:
        rest = distance - abs(first)
        if 0 <= rest <= 2 * (m - 1):
            for tail in _offsets_at(m - 1, rest):
                yield (first, *tail)


class TemplateOptimizer(PromptOptimizer):
    """Composes ``original + instructions`` for every objective in the goal.

    Args:
        phrasings: How many alternative phrasings per level to use (1 or 2).
        system_variants: Also propose the instructions of the combos nearest the target as
            a system message, the user's prompt unchanged (default off: it did not help on
            the dev split).
        length_caps: Also propose those combos with an output cap (:data:`LENGTH_CAPS`)
            when they ask for verbosity level 0 or 1 (default on: it helped on the dev
            split where it applies).
    """

    def __init__(
        self, phrasings: int = 2, *, system_variants: bool = False, length_caps: bool = True
    ) -> None:
        self.phrasings = max(1, min(2, phrasings))
        self.system_variants = system_variants
        self.length_caps = length_caps

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        objs = request.objectives
        base = self._base_levels(request)
        rng = random.Random(request.seed)
        constraints = find_constraints(request.prompt)
        lead = precedence_clause(constraints)
        out: list[Proposal] = []
        varied = 0
        seen: set[tuple[tuple[int, ...], int]] = set()
        for offsets, variant in self._combos(len(objs), rng):
            levels = tuple(min(4, max(0, b + o)) for b, o in zip(base, offsets, strict=True))
            if (levels, variant) in seen:
                continue
            seen.add((levels, variant))
            instructions = " ".join(
                [lead] * bool(lead)
                + [_instruction(o, lv, variant) for o, lv in zip(objs, levels, strict=True)]
            )
            prompt = f"{request.prompt.rstrip()}\n\n{instructions}"
            if prompt in request.avoid or any(p.prompt == prompt for p in out):
                continue  # (phrasings can coincide, e.g. an objective with no description)
            meta = {
                "levels": {o.name: lv for o, lv in zip(objs, levels, strict=True)},
                "constraints": constraints,
            }
            proposal = Proposal(prompt=prompt, origin="template", meta=meta)
            out.append(proposal)
            if varied < _VARIANTS_OF:
                varied += 1
                out += self._variants(request.prompt, proposal, instructions)
            if len(out) >= request.n:
                break
        return out[: request.n]

    def _variants(self, original: str, proposal: Proposal, instructions: str) -> list[Proposal]:
        """The same instructions sent otherwise: as a system message, or with an output cap."""
        out = []
        if self.system_variants:
            out.append(replace(proposal, prompt=original, system=instructions))
        level = proposal.meta["levels"].get("verbosity")
        # a cap would break a prompt's own length or format requirement ("at least 300 words")
        if self.length_caps and level in LENGTH_CAPS and not proposal.meta["constraints"]:
            out.append(replace(proposal, max_tokens=LENGTH_CAPS[level]))
        return out

    def _combos(self, m: int, rng: random.Random) -> Iterator[tuple[tuple[int, ...], int]]:
        """(level offsets, phrasing) nearest the target first, lazily: 5^m grows fast.

        Ordered by total distance, then the largest single offset, then phrasing; seeded order
        among equals.
        """
        for distance in range(2 * m + 1):
            group = [
                (offsets, variant)
                for offsets in _offsets_at(m, distance)
                for variant in range(self.phrasings)
            ]
            rng.shuffle(group)
            group.sort(key=lambda c: (max(map(abs, c[0]), default=0), c[1]))
            yield from group

    @staticmethod
    def _base_levels(request: OptimizeRequest) -> Sequence[int]:
        """The level to aim at per objective: the target, corrected by measured feedback."""
        fb = request.feedback
        prior = dict(fb.meta.get("levels", {})) if fb else {}
        levels = []
        for obj in request.objectives:
            target = _to_grid(obj, request.goal[obj.name])
            if fb is not None and obj.name in prior and obj.name in fb.measured:
                error = _to_grid(obj, fb.measured[obj.name]) - target
                target = prior[obj.name] - error
            levels.append(int(min(4, max(0, round(target)))))
        return levels
