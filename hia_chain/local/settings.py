"""DecodeSettings: every setting of one local decoding, validated in one place.

``LocalChatModel``, ``IVGChatModel``, :func:`~hia_chain.local.beam.chunk_beam_search` and the
FUDGE sampler take one frozen :class:`DecodeSettings` instead of a dozen keyword arguments, so
each rule (and its error message) is written once: the chat models build one from their fields
at construction (a bad field fails there) and again per call with the call's overrides.

The logits processors are ``transformers``' own, in ``generate``'s order: repetition penalty →
no-repeat n-gram → (the caller's extra processors) → temperature → top-k → top-p. The
repetition pair reads each row's whole ids (prompt included, as ``generate`` does for
decoder-only models): a 135M model left alone loops on one sentence.

Importing this module does not import torch; :meth:`DecodeSettings.processors` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from hia_chain.errors import ConfigError
from hia_chain.local._extra import require_torch

if TYPE_CHECKING:
    from transformers import LogitsProcessorList

    from hia_chain.local.guidance import LogitsProcessor

__all__ = ["GUIDANCE_MODES", "DecodeSettings", "GuidanceMode"]

GuidanceMode = Literal["none", "token", "chunk", "both"]
"""Which value guidance IVG applies: none, token-level, chunk-level, or both (the default)."""
GUIDANCE_MODES: tuple[GuidanceMode, ...] = get_args(GuidanceMode)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode: sampling, repetition control, the chunk-level beam shape and the length.

    The defaults are plain sampling from the model's distribution, one row, repetition control
    off, as in ``generate``; the chat models pass their own field values.

    Raises:
        ConfigError: a setting is out of range; the message names it and its range.
    """

    max_tokens: int = 256
    """Cap on response tokens."""
    temperature: float = 1.0
    """Logits are divided by it before sampling; 0 decodes greedily (argmax)."""
    top_k: int | None = None
    """Sample among the k likeliest tokens; None = all."""
    top_p: float = 1.0
    """Sample from the smallest set of tokens whose probability reaches p; 1 = all."""
    repetition_penalty: float = 1.0
    """transformers' repetition penalty on tokens already in the row (1 = off, > 1 discourages)."""
    no_repeat_ngram_size: int = 0
    """No ``n`` tokens in a row twice in a row's prompt and answer (0 = off)."""
    beam_width: int = 1
    """Beams kept after each chunk (W)."""
    successors_per_beam: int = 1
    """Rows sampled from each kept beam (K); the prompt starts W·K rows."""
    chunk_tokens: int | None = None
    """Tokens between selections (L); None = one chunk to ``max_tokens``."""

    def __post_init__(self) -> None:
        for name in ("max_tokens", "beam_width", "successors_per_beam"):
            if not _is_count(getattr(self, name), 1):
                msg = f"`{name}` must be an integer >= 1, got {getattr(self, name)!r}."
                raise ConfigError(msg)
        if self.chunk_tokens is not None and not _is_count(self.chunk_tokens, 1):
            msg = (
                "`chunk_tokens` must be an integer >= 1 or None (one chunk to the end), "
                f"got {self.chunk_tokens!r}."
            )
            raise ConfigError(msg)
        if not (_is_number(self.temperature) and self.temperature >= 0):
            msg = f"`temperature` must be a finite number >= 0 (0 = greedy), got {self.temperature!r}."
            raise ConfigError(msg)
        if self.top_k is not None and not _is_count(self.top_k, 1):
            msg = f"`top_k` must be an integer >= 1 or None, got {self.top_k!r}."
            raise ConfigError(msg)
        if not (_is_number(self.top_p) and 0 < self.top_p <= 1):
            msg = f"`top_p` must be a number in (0, 1], got {self.top_p!r}."
            raise ConfigError(msg)
        if not (_is_number(self.repetition_penalty) and self.repetition_penalty > 0):
            msg = (
                "`repetition_penalty` must be a finite number > 0 (1 = off, above 1 discourages "
                f"tokens already seen), got {self.repetition_penalty!r}."
            )
            raise ConfigError(msg)
        if not _is_count(self.no_repeat_ngram_size, 0):
            msg = (
                "`no_repeat_ngram_size` must be an integer >= 0 (0 = off, n bans any n tokens "
                f"in a row that already occurred), got {self.no_repeat_ngram_size!r}."
            )
            raise ConfigError(msg)

    @property
    def sample(self) -> bool:
        """False when decoding greedily (``temperature == 0``): take the argmax."""
        return self.temperature > 0

    def processors(self, extra: Sequence[LogitsProcessor] = ()) -> LogitsProcessorList:
        """The logits processor chain, skipping the settings that are off.

        Args:
            extra: processors to run after repetition control and before temperature (where
                ``generate`` puts a caller's ``logits_processor``), e.g. a constraint.

        Returns:
            A ``LogitsProcessorList`` called as ``(input_ids, scores) -> new scores``; it never
            modifies ``scores`` in place. Greedy decoding gets no temperature processor.
        """
        require_torch()
        from transformers import LogitsProcessorList
        from transformers.generation.logits_process import (
            NoRepeatNGramLogitsProcessor,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        chain = LogitsProcessorList()
        if self.repetition_penalty != 1:
            chain.append(RepetitionPenaltyLogitsProcessor(float(self.repetition_penalty)))
        if self.no_repeat_ngram_size > 0:
            chain.append(NoRepeatNGramLogitsProcessor(self.no_repeat_ngram_size))
        chain.extend(extra)
        if self.sample and self.temperature != 1:
            chain.append(TemperatureLogitsWarper(float(self.temperature)))
        if self.top_k is not None:
            chain.append(TopKLogitsWarper(self.top_k))
        if self.top_p != 1:
            chain.append(TopPLogitsWarper(float(self.top_p)))
        return chain
