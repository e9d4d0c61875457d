"""Chat-text generation for ``LocalChatModel``: a batch of prompts decoded together, or one
prompt streamed, token by token through the package's own sampler.

Why not ``model.generate``: in the installed transformers (5.x) ``generate`` samples with
torch's global random state and takes no ``torch.Generator``, so a seed would mean
``torch.manual_seed``, which reseeds every other user of torch in the process. The package's
loop (:func:`~hia_chain.local.decoding.guided_decode`) takes a per-call generator and samples
exactly as ``generate`` does otherwise (transformers' own warpers, left padding with explicit
positions, one cached forward pass per token). The limit: the random streams differ, so a seed
reproduces this package's answer, not the one ``generate`` would give after
``torch.manual_seed`` with the same seed.

Each row of a batch has its own token cap (the batch runs until its largest), so requests that
differ only in ``max_tokens`` still share a forward pass. Stop strings are checked after every
token, so a row stops decoding (and counting tokens) as soon as one appears;
:func:`cut_at_stop` is the one place where text is cut at a stop string and given its finish
reason, for batches, streams and ``IVGChatModel`` alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from hia_chain.local._extra import require_torch
from hia_chain.local.decoding import guided_decode
from hia_chain.local.hf_adapter import CausalStream, eos_token_ids, pad_token_id, real_vocab_size
from hia_chain.local.settings import DecodeSettings

require_torch()

import torch  # noqa: E402

__all__ = ["Generated", "TextDecoder", "cut_at_stop", "stream_text"]


@dataclass(frozen=True)
class Generated:
    """One generation with its real token counts."""

    text: str
    input_tokens: int
    output_tokens: int
    """Tokens decoded for this answer, its end token included."""
    finish_reason: str
    """``"stop"`` (an end token or a stop string) or ``"length"`` (the row's cap reached)."""


def _stop_at(text: str, stop: Sequence[str]) -> int | None:
    """Where the earliest stop string in ``text`` starts, or None."""
    found = [text.find(s) for s in stop if s and s in text]
    return min(found) if found else None


def cut_at_stop(text: str, stop: Sequence[str], ended: bool) -> tuple[str, str]:
    """``text`` up to the earliest stop string, and the finish reason.

    Args:
        text: the decoded answer.
        stop: stop strings (empty ones are ignored).
        ended: the answer ended with an end-of-sequence token.

    Returns:
        ``(text, "stop")`` when cut or ended, else ``(text, "length")``.
    """
    at = _stop_at(text, stop)
    if at is not None:
        return text[:at], "stop"
    return text, "stop" if ended else "length"


_CLEANUP_REACH = 4
"""Tokenization clean-up (transformers' ``clean_up_tokenization``, the WordPiece decoder's
``cleanup``) rewrites a space and at most the 3 characters after it (`` n't`` → ``n't``,
`` .`` → ``.``): a later token can change a text's last space if fewer than 4 characters
follow it."""


def _settled(text: str, stop: Sequence[str]) -> str:
    """The part of a growing text that no later token can change: without a trailing
    incomplete character (``\\ufffd``), a suffix that may be the start of a stop string, or a
    last space that tokenization clean-up may still remove (with what follows it)."""
    text = text.rstrip("\ufffd")
    held = max(
        (n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])),
        default=0,
    )
    space = text.rfind(" ")
    if space >= 0 and len(text) - space <= _CLEANUP_REACH:
        held = max(held, len(text) - space)
    return text[: len(text) - held]


class TextDecoder:
    """Decodes a batch of prompts one token per row per :meth:`step`.

    Each row stops at an end token, at a stop string, or at its own token cap; the batch steps
    until no row is live. Finished rows stay in the batch but only emit padding (and are no
    longer counted).

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer.
        prompts: token ids per row (chat template applied), left-padded here.
        settings: sampling, and the length when ``max_tokens`` is not given (beam settings are
            ignored: one row per prompt).
        max_tokens: each row's token cap, in prompt order; default ``settings.max_tokens`` for
            every row.
        stop: stop strings, checked on each row's decoded text after every token.
        generator: the random source for sampling (unused when greedy).

    Raises:
        ValueError: ``max_tokens`` has not one integer >= 1 per prompt.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompts: Sequence[Sequence[int]],
        settings: DecodeSettings,
        *,
        max_tokens: Sequence[int] | None = None,
        stop: Sequence[str] = (),
        generator: torch.Generator | None = None,
    ) -> None:
        caps = [settings.max_tokens] * len(prompts) if max_tokens is None else list(max_tokens)
        if len(caps) != len(prompts) or not all(isinstance(c, int) and c >= 1 for c in caps):
            msg = f"max_tokens needs one integer >= 1 per prompt ({len(prompts)}), got {caps!r}"
            raise ValueError(msg)
        self.caps = caps
        """Each row's token cap."""
        self.tokenizer, self.settings, self.stop = tokenizer, settings, tuple(stop)
        self.generator = generator
        self._pad, self._vocab = pad_token_id(tokenizer), real_vocab_size(tokenizer)
        self._eos = eos_token_ids(tokenizer, model)
        self._stream = CausalStream.prefill(model, prompts, self._pad)
        self._chain = settings.processors()
        self.input_tokens = [len(p) for p in prompts]
        self.tokens: list[list[int]] = [[] for _ in prompts]
        self._ended = [False] * len(prompts)  # an end token
        self._stopped = [False] * len(prompts)  # a stop string
        self._steps = 0

    def live(self, row: int) -> bool:
        """The row may still grow."""
        return not (self._ended[row] or self._stopped[row]) and self._steps < self.caps[row]

    def step(self) -> bool:
        """Decode one more token for every live row; False (and nothing done) when none is."""
        live = [self.live(r) for r in range(len(self.tokens))]
        if not any(live):
            return False
        self._steps += 1
        # skip the forward pass after this token when no row will want another
        more = any(x and self._steps < cap for x, cap in zip(live, self.caps, strict=True))
        out = guided_decode(
            self._stream,
            None,
            self._chain,
            max_new_tokens=1,
            vocab_size=self._vocab,
            eos_ids=self._eos,
            pad_id=self._pad,
            generator=self.generator,
            finished=torch.tensor([not x for x in live], device=self._stream.ids.device),
            sample=self.settings.sample,
            feed_last=more,
        )
        new, ended = out.tokens[:, 0].tolist(), out.finished.tolist()
        for r in (r for r, x in enumerate(live) if x):
            self.tokens[r].append(new[r])
            self._ended[r] = ended[r]
            if self.stop and not ended[r]:
                self._stopped[r] = _stop_at(self._decoded(r), self.stop) is not None
        return True

    def _decoded(self, row: int) -> str:
        ids = self.tokens[row][:-1] if self._ended[row] else self.tokens[row]
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def text(self, row: int) -> str:
        """The row's answer so far, cut at a stop string."""
        return cut_at_stop(self._decoded(row), self.stop, self._ended[row])[0]

    def result(self, row: int) -> Generated:
        """The row's answer, token counts and finish reason (as it stands)."""
        text, reason = cut_at_stop(self._decoded(row), self.stop, self._ended[row])
        return Generated(text, self.input_tokens[row], len(self.tokens[row]), reason)

    def run(self) -> list[Generated]:
        """Decode every row to its end: one :class:`Generated` per prompt, in order."""
        while self.step():
            pass
        return [self.result(r) for r in range(len(self.tokens))]


def stream_text(
    decoder: TextDecoder,
    row: int = 0,
    *,
    guard: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Iterator[str]:
    """The row's answer as text pieces, each as soon as later tokens cannot change it.

    Each piece is the new end of the whole text decoded so far, sent only while the text sent
    before is a prefix of it. What a later token could still change is held back: half of a
    multi-byte character, text that may be the start of a stop string, and a last space that
    tokenization clean-up (``clean_up_tokenization_spaces``) may remove with the up to 3
    characters after it (`` n't`` → ``n't``). So the joined pieces are exactly
    ``decoder.result(row).text`` for byte-level BPE and SentencePiece decoders, with or
    without clean-up. The assumption left: a later token changes nothing before the last
    space of the 4 last characters (a decoder that rewrites text further back could make the
    join differ from the result).

    Args:
        decoder: the decoder to step.
        row: the row to stream.
        guard: entered around each :meth:`TextDecoder.step` (the model's forward pass), e.g.
            a lock that keeps other decoding off the same weights; not held while the caller
            handles a piece.
    """
    sent = ""
    while True:
        with guard():
            if not decoder.step():
                break
        text = decoder.text(row)
        settled = _settled(text, decoder.stop) if decoder.live(row) else text
        if len(settled) > len(sent) and settled.startswith(sent):
            yield settled[len(sent) :]
            sent = settled
    rest = decoder.text(row)[len(sent) :]
    if rest:
        yield rest
