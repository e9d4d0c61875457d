"""Token-level value guidance: the guidance combiner, the guide prompt and vocabulary checks.

Sampling and repetition control use ``transformers``' own processors, built and validated by
:class:`~hia_chain.local.settings.DecodeSettings`, so guided and plain decoding sample exactly
as ``generate`` does.

Token guidance (the IVG/EFT rule, on raw last-position logits over the full vocabulary)::

    logits = z_base + beta * sum_j (z_tuned_j - z_ref)

then repetition control -> temperature -> top-k -> top-p -> sample. A guidance pair is either
two models (tuned, reference) that share the base model's tokenizer, or the tuning-free pair:
one small model with and without a goal-describing system prompt. When the reference side is
the base model itself (the embedded model guiding itself), the rule is
``(1 - beta) z_base + beta z_tuned``: ``beta = 1`` is plain prompting with the goal and only
``beta > 1`` extrapolates beyond it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.local._extra import require_torch

require_torch()

import torch  # noqa: E402

__all__ = [
    "DEFAULT_NO_REPEAT_NGRAM_SIZE",
    "DEFAULT_REPETITION_PENALTY",
    "LogitsProcessor",
    "check_shared_vocabulary",
    "goal_system_prompt",
    "guided_logits",
    "with_system_prompt",
]

DEFAULT_REPETITION_PENALTY = 1.1
"""Default of IVGChatModel and ``hia-chain ivg``: mild (CTRL suggests 1.2); 1 turns it off."""
DEFAULT_NO_REPEAT_NGRAM_SIZE = 4
"""Default of IVGChatModel and ``hia-chain ivg``: no 4-token sequence twice; 0 turns it off."""

_CROSS_TOKENIZER_HINT = (
    "Token-level guidance adds logits token by token, so it needs one shared vocabulary; "
    "chunk-level guidance (guidance='chunk') still works across tokenizers because it scores "
    "decoded text."
)


class LogitsProcessor(Protocol):
    """Anything called as ``(input_ids, scores) -> new scores`` without mutating ``scores``."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor: ...


def guided_logits(
    base: torch.Tensor,
    tuned: Sequence[torch.Tensor],
    reference: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """``base + beta * sum_j (tuned_j - reference)`` on raw logits, as a new tensor.

    Args:
        base: ``(batch, vocab)`` raw last-position logits of the model being steered.
        tuned: one ``(batch, vocab)`` tensor per tuned (goal-aware) guide.
        reference: ``(batch, vocab)`` logits of the untuned reference (the base logits
            themselves when the base model is its own reference).
        beta: guidance strength; 0 returns ``base`` unchanged.

    Raises:
        ConfigError: ``beta`` is not finite, or the shapes differ.
    """
    if not math.isfinite(beta):
        msg = f"`beta` must be a finite number, got {beta!r}."
        raise ConfigError(msg)
    shapes = {tuple(t.shape) for t in (base, reference, *tuned)}
    if len(shapes) != 1:
        msg = f"guided_logits needs equal (batch, vocab) shapes, got {sorted(shapes)}."
        raise ConfigError(msg)
    if beta == 0 or not tuned:
        return base.clone()
    delta = torch.stack([t - reference for t in tuned]).sum(dim=0)
    return base + beta * delta


def _vocab_of(tokenizer: Any) -> dict[str, int]:
    return dict(tokenizer.get_vocab())


def check_shared_vocabulary(
    base_tokenizer: Any,
    guide_tokenizer: Any,
    *,
    base_logits_width: int | None = None,
    guide_logits_width: int | None = None,
) -> int:
    """The number of real tokens two models share, or a ConfigError if they differ.

    Models often pad their output layer beyond the tokenizer (e.g. to a multiple of 64), so the
    logits widths may differ while the real token set is the same: compare the tokenizers'
    vocabularies (token → id) and check that both output layers cover them. Guidance then runs
    on ``logits[..., :n]``.

    Returns:
        ``n``: the size of the shared real vocabulary.

    Raises:
        ConfigError: the vocabularies differ, or an output layer is narrower than them.
    """
    base_vocab, guide_vocab = _vocab_of(base_tokenizer), _vocab_of(guide_tokenizer)
    if base_vocab != guide_vocab:
        differing = sorted(set(base_vocab.items()) ^ set(guide_vocab.items()))[:3]
        msg = (
            f"The guide model's tokenizer differs from the base model's ({len(guide_vocab)} vs "
            f"{len(base_vocab)} tokens; e.g. {differing}). {_CROSS_TOKENIZER_HINT}"
        )
        raise ConfigError(msg)
    n = max(base_vocab.values(), default=-1) + 1
    for who, width in (("base", base_logits_width), ("guide", guide_logits_width)):
        if width is not None and width < n:
            msg = (
                f"The {who} model outputs {width} logits but its tokenizer has {n} tokens, so "
                f"token-level guidance cannot line them up. {_CROSS_TOKENIZER_HINT}"
            )
            raise ConfigError(msg)
    return n


def goal_system_prompt(goal: Mapping[str, float], objectives: Sequence[Objective]) -> str:
    """A system prompt describing the goal in the objectives' own words (for the guide side).

    A target in the top quarter of the scale asks for the objective's ``high_label``, one in
    the bottom quarter for its ``low_label``, anything else for a middle ground.
    """
    by_name = {o.name: o for o in objectives}
    parts = []
    for name, target in goal.items():
        obj = by_name[name]
        frac = (target - obj.low) / obj.span
        if frac >= 0.75:
            parts.append(obj.high_label)
        elif frac <= 0.25:
            parts.append(obj.low_label)
        else:
            parts.append(f"moderate {name}, neither {obj.low_label} nor {obj.high_label}")
    return f"You are a helpful assistant. Write your answer in this style: {'; '.join(parts)}."


def with_system_prompt(conv: Sequence[Mapping[str, str]], system: str) -> list[dict[str, str]]:
    """The conversation with ``system`` appended to its system message (or as a new one)."""
    if conv and conv[0]["role"] == "system":
        return [
            {"role": "system", "content": f"{conv[0]['content']}\n\n{system}"},
            *map(dict, conv[1:]),
        ]
    return [{"role": "system", "content": system}, *map(dict, conv)]
