"""Chunk-level beam search (CBS) around the token-guided sampler.

``beam_width`` beams × ``successors_per_beam`` successors decode as one batch with KV caches;
every ``chunk_tokens`` tokens a value function scores each row's whole decoded prefix, the
best ``beam_width`` survive, and every model's ids and KV cache are index-selected to them
(no prefix is ever re-encoded). Best-of-N is ``(beam_width=1, successors_per_beam=N,
chunk_tokens=None)``; plain or token-guided sampling is ``(1, 1, None)``; IVG is CBS with token
guidance switched on in the streams.

Finished beams leave the batch: a beam that has ended keeps its text and value in a pool and
competes in every later selection, but it is neither duplicated into K identical successors
nor fed further tokens (the public code decodes K copies of it to the end).

The search never loads or owns a reward model: it is handed a :class:`ValueFunction`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.local._extra import require_torch
from hia_chain.local.decoding import Guidance, guided_decode
from hia_chain.local.guidance import LogitsProcessor
from hia_chain.local.hf_adapter import CausalStream
from hia_chain.local.settings import DecodeSettings
from hia_chain.local.values import ValueFunction

require_torch()

import torch  # noqa: E402

__all__ = ["Beam", "BeamResult", "ChunkStep", "chunk_beam_search"]


@dataclass(frozen=True)
class Beam:
    """One response of the search: its tokens, text, last value and whether it ended."""

    token_ids: tuple[int, ...]
    text: str
    value: float
    """The value function's last score (0.0 when no value function ran)."""
    finished: bool
    implicit: float = 0.0
    """Σ_t Σ_j log π_tuned_j − log π_ref over its tokens (0 without guide streams)."""


@dataclass(frozen=True)
class ChunkStep:
    """One selection round, for the trace."""

    tokens: int
    """Response tokens decoded so far (the chunk boundary)."""
    rows: int
    """Rows decoded in this chunk (finished beams excluded)."""
    scores: tuple[float, ...]
    """The value of every decoded row, in row order."""
    kept: tuple[float, ...]
    """Values of the beams kept (finished ones from the pool included), best first."""
    kept_finished: int = 0
    """How many of the kept beams have ended (they are not decoded further)."""


@dataclass(frozen=True)
class BeamResult:
    """The kept beams (best first), the per-chunk trace and the compute spent."""

    beams: tuple[Beam, ...]
    chunks: tuple[ChunkStep, ...]
    tokens_generated: int
    """New tokens decoded over every row: the search's compute, next to the answer's length."""

    @property
    def best(self) -> Beam:
        """The selected answer."""
        return self.beams[0]

    def trace(self) -> dict[str, Any]:
        """JSON-ready summary: answer length, compute, the kept beams and every chunk's values."""
        return {
            "new_tokens": len(self.best.token_ids),
            "tokens_generated": self.tokens_generated,
            "beams": [
                {
                    "text": b.text,
                    "value": b.value,
                    "finished": b.finished,
                    "tokens": len(b.token_ids),
                }
                for b in self.beams
            ],
            "chunks": [
                {
                    "tokens": c.tokens,
                    "rows": c.rows,
                    "scores": list(c.scores),
                    "kept": list(c.kept),
                    "kept_finished": c.kept_finished,
                }
                for c in self.chunks
            ],
        }


def chunk_beam_search(
    base: CausalStream,
    guidance: Guidance | None,
    value: ValueFunction | None,
    settings: DecodeSettings,
    *,
    prompt: str,
    decode: Callable[[Sequence[int]], str],
    vocab_size: int,
    eos_ids: frozenset[int],
    pad_id: int,
    generator: torch.Generator | None,
    extra_processors: Sequence[LogitsProcessor] = (),
) -> BeamResult:
    """Search for the best response to one prompt.

    Args:
        base: the base model's stream, prefilled with the prompt (batch 1).
        guidance: guide streams prefilled the same way (batch 1), or None.
        value: scores decoded prefixes; may be None only when ``beam_width *
            successors_per_beam == 1`` (nothing to choose between).
        settings: the beam shape (W, K, L), ``max_tokens``, sampling and repetition control.
            Repetition control follows every row through expansion and pruning: the ids are
            reordered with the caches. Its default here is off, as in ``generate``.
        prompt: the user's request, passed to the value function.
        decode: token ids -> text (special tokens dropped).
        vocab_size: the real (shared) vocabulary size.
        eos_ids: ids that end a response.
        pad_id: id fed to ended rows.
        generator: the explicit random source for sampling.
        extra_processors: logits processors run after repetition control and before
            temperature (e.g. a constraint).

    Raises:
        ConfigError: a missing value function, or streams not at batch 1.
        RewardModelError: the value function returned the wrong number of scores.
    """
    beam_width, successors_per_beam = settings.beam_width, settings.successors_per_beam
    max_new_tokens = settings.max_tokens
    chain = settings.processors(extra_processors)
    if value is None and beam_width * successors_per_beam > 1:
        msg = "Choosing among several beams needs a value function; pass `value`."
        raise ConfigError(msg)
    streams = [base, *(guidance.streams() if guidance else [])]
    if any(s.batch_size != 1 for s in streams):
        msg = "chunk_beam_search takes streams prefilled with exactly one prompt (batch 1)."
        raise ConfigError(msg)
    with_implicit = bool(guidance and guidance.tuned)
    live: list[tuple[int, list[int], float]] = [(0, [], 0.0)]  # (batch row, tokens, implicit)
    pool: list[Beam] = []  # finished beams still competing
    chunks: list[ChunkStep] = []
    kept: list[tuple[Beam, int | None]] = []
    generated = spent = 0
    while live and generated < max_new_tokens:
        # expand: the prompt into W·K rows, then each live beam into K rows, in one reorder
        copies = beam_width * successors_per_beam if not chunks else successors_per_beam
        rows = [beam for beam in live for _ in range(copies)]
        index = torch.tensor([row for row, _, _ in rows], dtype=torch.long)
        for stream in streams:
            stream.reorder(index)
        # decode one chunk (the last one skips the forward pass nobody would use)
        steps = min(settings.chunk_tokens or max_new_tokens, max_new_tokens - generated)
        out = guided_decode(
            base,
            guidance,
            chain,
            max_new_tokens=steps,
            vocab_size=vocab_size,
            eos_ids=eos_ids,
            pad_id=pad_id,
            generator=generator,
            sample=settings.sample,
            feed_last=generated + steps < max_new_tokens,
        )
        generated += steps
        counts = out.new_tokens.tolist()
        spent += sum(counts)
        tokens = [r[1] + out.tokens[i, : counts[i]].tolist() for i, r in enumerate(rows)]
        implicit = [r[2] + float(x) for r, x in zip(rows, out.log_ratio.tolist(), strict=True)]
        texts = [decode(t) for t in tokens]
        # score every row's whole prefix
        scores = [0.0] * len(rows)
        if value is not None:
            scores = value(prompt, texts, implicit=implicit if with_implicit else None)
            if len(scores) != len(rows):
                msg = f"{value.name} returned {len(scores)} scores for {len(rows)} prefixes."
                raise RewardModelError(msg)
        ended = out.finished.tolist()
        fresh = [
            (Beam(tuple(t), x, float(s), bool(e), imp), i)
            for i, (t, x, s, e, imp) in enumerate(
                zip(tokens, texts, scores, ended, implicit, strict=True)
            )
        ]
        # keep the best W of the finished pool and this chunk's rows (stable: earlier wins ties)
        candidates: list[tuple[Beam, int | None]] = [(b, None) for b in pool]
        candidates += fresh
        kept = sorted(candidates, key=lambda c: -c[0].value)[:beam_width]
        pool = [b for b, _ in kept if b.finished]
        live = [
            (i, list(b.token_ids), b.implicit) for b, i in kept if i is not None and not b.finished
        ]
        kept_values = tuple(b.value for b, _ in kept)
        chunks.append(ChunkStep(generated, len(rows), tuple(scores), kept_values, len(pool)))
    return BeamResult(tuple(b for b, _ in kept), tuple(chunks), spent)
