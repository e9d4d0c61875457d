"""Model glue for guided decoding: chat templates, left padding, positions, KV caches, eos/pad.

One :class:`CausalStream` is one model's view of a batch of rows: its own prompt ids, its own
attention mask and position ids, its own KV cache and the logits it predicts next. Base model,
tuned guide and reference guide each get a stream, so each keeps its own prompt template (the
tuning-free pair differs only by a system prompt) while they all decode the same tokens.

Two pitfalls of the public IVG code are handled here once:

* left padding comes with explicit ``position_ids`` from the attention mask's cumulative sum,
  so a left-padded row sees the same positions as the same row alone (GPT-2-style absolute
  positions and RoPE alike);
* the prefix is encoded once; each step feeds one token per row through the cache, and beam
  reordering index-selects every cache instead of re-encoding.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hia_chain.errors import ConfigError
from hia_chain.local._extra import require_torch

require_torch()

import torch  # noqa: E402

__all__ = [
    "CausalStream",
    "chat_ids",
    "eos_token_ids",
    "left_pad",
    "logits_width",
    "model_device",
    "pad_token_id",
    "positions_from_mask",
    "real_vocab_size",
    "reorder_cache",
]


def model_device(model: Any) -> torch.device:
    """The device of a model's first parameter (CPU for a parameterless stub)."""
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def logits_width(model: Any) -> int:
    """How many logits the model's output layer produces (may exceed the tokenizer: padding)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    return int(model.config.vocab_size)


def real_vocab_size(tokenizer: Any) -> int:
    """Ids ``0..n-1`` the tokenizer can produce; logits beyond them are vocabulary padding."""
    return max(tokenizer.get_vocab().values(), default=-1) + 1


def pad_token_id(tokenizer: Any) -> int:
    """The pad id, falling back to eos (many chat models define no pad token).

    Raises:
        ConfigError: the tokenizer has neither a pad nor an eos token.
    """
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    msg = "The tokenizer defines neither a pad nor an eos token; set `tokenizer.pad_token`."
    raise ConfigError(msg)


def eos_token_ids(tokenizer: Any, model: Any | None = None) -> frozenset[int]:
    """Every id that ends a response: the tokenizer's eos plus the generation config's."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif isinstance(config_eos, list | tuple):
        ids.update(int(i) for i in config_eos)
    return frozenset(ids)


def chat_ids(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of a conversation ready for the assistant's turn.

    Uses the tokenizer's chat template when it has one; a plain (base) language model gets the
    message contents joined by blank lines, so it simply continues the text.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = "\n\n".join(m["content"] for m in messages)
    return list(tokenizer(text)["input_ids"])


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows into ``(ids, attention_mask)``, both ``(batch, max_len)`` long.

    Raises:
        ConfigError: a row is empty (a model needs at least one token to predict from).
    """
    if not rows or any(len(r) == 0 for r in rows):
        msg = "Every prompt must encode to at least one token."
        raise ConfigError(msg)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long, device=device)
        mask[i, width - len(row) :] = 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token counted over real tokens only: ``cumsum(mask) - 1``, pads at 0."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def reorder_cache(cache: Any, index: torch.Tensor) -> Any:
    """Select batch rows ``index`` of a KV cache (rows may repeat: that is beam expansion).

    transformers 5 ``Cache`` objects (``DynamicCache`` and friends) offer ``reorder_cache``,
    which ``index_select``s every layer in place; legacy tuple caches are rebuilt.
    """
    if cache is None:
        return None
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    return tuple(tuple(t.index_select(0, index.to(t.device)) for t in layer) for layer in cache)


_OLD = "past_key_values"


def _cache_of(out: Any) -> Any:
    """A forward pass's KV cache, under its transformers 5.x name or the old one."""
    return out["cache"] if "cache" in out else out.past_key_values


@dataclass
class CausalStream:
    """One model decoding a batch incrementally: ids, mask, positions, KV cache, next logits.

    Shapes: ``ids`` and ``mask`` ``(batch, prompt + generated)``; ``next_position`` ``(batch,)``;
    ``logits`` ``(batch, logits_width)`` float32, the raw prediction for the next token.
    """

    model: Any
    ids: torch.Tensor
    mask: torch.Tensor
    next_position: torch.Tensor
    cache: Any
    logits: torch.Tensor
    cache_arg: str = _OLD
    """The forward pass's name for the KV cache: ``cache`` since transformers 5.x (the old
    name warns on every call there), ``past_key_values`` before."""

    @classmethod
    @torch.no_grad()
    def prefill(cls, model: Any, prompts: Sequence[Sequence[int]], pad_id: int) -> CausalStream:
        """Encode left-padded prompts once and keep the cache and last-position logits."""
        ids, mask = left_pad(prompts, pad_id, model_device(model))
        positions = positions_from_mask(mask)
        # Only the last position's logits are used: skip prompt × vocabulary floats per row.
        last_only = (
            {"logits_to_keep": 1}
            if "logits_to_keep" in inspect.signature(model.forward).parameters
            else {}
        )
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **last_only
        )
        return cls(
            model=model,
            ids=ids,
            mask=mask,
            next_position=positions[:, -1] + 1,
            cache=_cache_of(out),
            logits=out.logits[:, -1, :].float(),
            cache_arg="cache" if "cache" in inspect.signature(model.forward).parameters else _OLD,
        )

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor) -> None:
        """Feed one token per row (``(batch,)``) through the cache; update ``logits``."""
        step = tokens.to(self.ids.device).view(-1, 1)
        self.ids = torch.cat([self.ids, step], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(step)], dim=1)
        out = self.model(
            input_ids=step,
            attention_mask=self.mask,
            position_ids=self.next_position.view(-1, 1),
            use_cache=True,
            **{self.cache_arg: self.cache},
        )
        self.cache = _cache_of(out)
        self.next_position = self.next_position + 1
        self.logits = out.logits[:, -1, :].float()

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` (repeats allowed) of every per-row tensor and of the cache."""
        index = index.to(self.ids.device)
        self.ids = self.ids.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.next_position = self.next_position.index_select(0, index)
        self.logits = self.logits.index_select(0, index)
        self.cache = reorder_cache(self.cache, index)

    @property
    def batch_size(self) -> int:
        """Rows currently decoded."""
        return int(self.ids.shape[0])
