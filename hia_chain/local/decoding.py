"""The guided decoding loop: token-level value guidance over cached model streams.

:func:`guided_decode` is the whole sampler, nanoGPT style. It resumes from the streams' state,
so chunk-level beam search (``beam.py``) calls it for ``chunk_tokens`` steps at a time, the
local chat model (``generation.py``) one step at a time, and a plain or token-guided generation
is a single call for ``max_new_tokens`` steps. Randomness comes only from the caller's
``torch.Generator`` (:func:`seeded_generator`), never from torch's global seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from hia_chain.local._extra import require_torch
from hia_chain.local.guidance import LogitsProcessor, guided_logits
from hia_chain.local.hf_adapter import CausalStream

require_torch()

import torch  # noqa: E402
from transformers import LogitsProcessorList  # noqa: E402

__all__ = [
    "DecodeResult",
    "Guidance",
    "guided_decode",
    "ids_for_processors",
    "seeded_generator",
]


@dataclass
class Guidance:
    """The guide side of token guidance: tuned streams, their reference, and the strength.

    ``reference=None`` means the base stream is its own reference (the tuning-free pair built
    from the base model itself): one forward pass fewer per token.
    """

    tuned: list[CausalStream]
    reference: CausalStream | None = None
    beta: float = 1.0

    def streams(self) -> list[CausalStream]:
        """Every stream the guide side owns (each must advance and reorder with the base)."""
        return [*self.tuned, *([self.reference] if self.reference is not None else [])]


@dataclass(frozen=True)
class DecodeResult:
    """What one :func:`guided_decode` call produced, row-aligned with the base stream."""

    tokens: torch.Tensor
    """``(batch, steps)`` new token ids; pad after a row's end."""
    finished: torch.Tensor
    """``(batch,)`` bool: the row has emitted an end-of-sequence token (now or before)."""
    new_tokens: torch.Tensor
    """``(batch,)`` tokens this call added per row, the end token included."""
    log_ratio: torch.Tensor = field(repr=False)
    """``(batch,)`` Σ_t Σ_j log π_tuned_j(y_t) − log π_ref(y_t) over this call's tokens (zero
    without guide streams): the implicit value's increment, free from logits already computed."""


def seeded_generator(device: torch.device, seed: int | None) -> tuple[torch.Generator, int]:
    """A fresh ``torch.Generator`` on ``device`` and its seed: ``seed``, or a random one if None.

    The seed is returned so a trace can report it and the call can be repeated exactly.
    """
    generator = torch.Generator(device=device)
    used = int(seed) if seed is not None else int(generator.seed())
    generator.manual_seed(used)
    return generator, used


def ids_for_processors(stream: CausalStream, vocab_size: int) -> torch.Tensor:
    """The stream's ids with left-padding positions set to ``vocab_size``.

    transformers' repetition processors count every id they are given; a left-padded row's pad
    (often the eos token) would be penalized or n-gram-banned as if the row had written it.
    Both processors map ids ``>= vocab_size`` to a spare column they drop, so that id is inert.
    """
    if bool(stream.mask.all()):
        return stream.ids
    return stream.ids.masked_fill(stream.mask == 0, vocab_size)


@torch.no_grad()
def guided_decode(
    base: CausalStream,
    guidance: Guidance | None,
    processors: LogitsProcessor | Sequence[LogitsProcessor],
    *,
    max_new_tokens: int,
    vocab_size: int,
    eos_ids: frozenset[int],
    pad_id: int,
    generator: torch.Generator | None,
    finished: torch.Tensor | None = None,
    sample: bool = True,
    feed_last: bool = True,
) -> DecodeResult:
    """Decode up to ``max_new_tokens`` tokens per row from the streams' current state.

    Every stream (base, tuned, reference) holds ``(b, t)`` ids and the ``(b, V)`` logits of its
    next token; each step combines them on the first ``vocab_size`` (real) tokens, samples one
    token per row with ``generator``, and feeds it through every KV cache. Rows in ``finished``
    (``(b,)`` bool) only emit ``pad_id``. ``feed_last=False`` skips the forward pass after the
    final step when nobody will decode further. Stops early once every row has ended.
    """
    # transformers types the ids as LongTensor; any long tensor is what it takes
    process = (
        processors
        if callable(processors)
        else cast(LogitsProcessor, LogitsProcessorList(processors))
    )
    streams = [base, *(guidance.streams() if guidance else [])]
    b, dev = base.batch_size, base.ids.device
    done = torch.zeros(b, dtype=torch.bool, device=dev) if finished is None else finished.to(dev)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=dev)
    log_ratio, new_tokens = torch.zeros(b, device=dev), torch.zeros(b, dtype=torch.long, device=dev)
    steps = [torch.empty((b, 0), dtype=torch.long, device=dev)]
    for step in range(max_new_tokens):
        if bool(done.all()):
            break
        # raw last-position logits of every model, cut to the shared real vocabulary
        z_base = base.logits[:, :vocab_size]
        z_tuned = [s.logits[:, :vocab_size] for s in guidance.tuned] if guidance else []
        ref = guidance.reference.logits[:, :vocab_size] if guidance and guidance.reference else None
        z_ref = z_base if ref is None else ref
        # token guidance: z_base + beta * sum_j (z_tuned_j - z_ref)
        z = guided_logits(z_base, z_tuned, z_ref, guidance.beta) if guidance else z_base
        # repetition control -> temperature -> top-k -> top-p, on a new tensor; the ids are
        # each row's prompt and answer so far, left padding hidden past the vocabulary
        z = process(ids_for_processors(base, vocab_size), z)
        # sample with the caller's generator (or argmax for greedy); ended rows emit pad
        if sample:
            nxt = torch.multinomial(z.softmax(dim=-1), 1, generator=generator).squeeze(1)
        else:
            nxt = z.argmax(dim=-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        # implicit value increment from the raw logits: sum_j log pi_tuned_j - log pi_ref
        live = ~done
        for zt in z_tuned:
            delta = (zt.log_softmax(-1) - z_ref.log_softmax(-1)).gather(1, nxt[:, None]).squeeze(1)
            log_ratio += torch.where(live, delta, 0.0)
        # bookkeeping: count live tokens, mark rows that just ended
        new_tokens += live.long()
        done = done | torch.isin(nxt, eos)
        steps.append(nxt[:, None])
        # one cached forward pass per model for the next step
        if (step + 1 < max_new_tokens or feed_last) and not bool(done.all()):
            for stream in streams:
                stream.advance(nxt)
    tokens = torch.cat(steps, dim=1)
    return DecodeResult(tokens=tokens, finished=done, new_tokens=new_tokens, log_ratio=log_ratio)
