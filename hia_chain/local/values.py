"""Value functions for chunk-level beam search: V(x, y≤t) scores every row's prefix.

A value function is called as ``value(prompt, texts, implicit=...) -> list[float]``, one
score per decoded response prefix, higher is better. Chunk-level beam search never owns or
loads one; it is handed a value function. Four kinds ship:

* :class:`ScorerValue` — explicit: any package :class:`~hia_chain.scorers.ReferenceScorer`
  (built-in text metrics, an LLM judge, ...) scores the decoded prefix against the user's
  prompt, and the reward function R(G, r) turns the scores into one number;
* :class:`SequenceClassifierValue` — a local transformers sequence-classification model (a
  reward model), one logit per text;
* :class:`TokenRewardValue` — FUDGE-style: a small LM's last hidden state of the prefix through
  a linear :class:`ValueHead` trained to predict the final reward (see ``fudge.py``);
* :class:`ImplicitValue` — β · Σ_t (log π_tuned − log π_ref)(y_t) over response tokens. The
  decoding loop accumulates the sum from logits it already computed, so this value costs no
  forward pass and never re-encodes anything.

Explicit values work across tokenizers (they read text); the implicit one needs token guidance
streams (a tuned/reference pair) to be present.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from hia_chain.asyncutil import run_sync
from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective, RewardName, get_reward_function, validate_goal
from hia_chain.local._extra import require_torch
from hia_chain.local.hf_adapter import (
    chat_ids,
    left_pad,
    model_device,
    pad_token_id,
    positions_from_mask,
)
from hia_chain.scorers.base import ReferenceScorer, score_responses

require_torch()

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "ImplicitValue",
    "ScorerValue",
    "SequenceClassifierValue",
    "TokenRewardValue",
    "ValueFunction",
    "ValueHead",
    "prefix_features",
]


class ValueFunction(ABC):
    """V(prompt, prefixes) -> one score per prefix, higher is better."""

    name: str = "value"
    needs_implicit: bool = False
    """True when the value reads the decoder's implicit log-ratio sums (guide streams must run)."""

    @abstractmethod
    def __call__(
        self, prompt: str, texts: Sequence[str], *, implicit: Sequence[float] | None = None
    ) -> list[float]:
        """Score each decoded response prefix.

        Args:
            prompt: the user's request (the last human message).
            texts: the decoded response of each row so far.
            implicit: per row, Σ_t Σ_j log π_tuned_j − log π_ref accumulated by the decoder,
                or ``None`` when no guide streams ran.
        """


def _check(values: Sequence[float], expected: int, source: str) -> list[float]:
    out = [float(v) for v in values]
    if len(out) != expected or not all(math.isfinite(v) for v in out):
        msg = f"{source} returned {out!r} for {expected} prefixes; expected finite numbers."
        raise RewardModelError(msg)
    return out


class ScorerValue(ValueFunction):
    """Explicit value: reference scorers measure the prefix, R(G, r) makes it one number.

    Args:
        scorers: one scorer or several; together they must cover every objective in ``goal``.
        goal: target per objective, e.g. ``{"sentiment": 4}``.
        objectives: the objectives' definitions (scale, weight); default: the package's
            built-in ones (verbosity, complexity, sentiment).
        reward: ``"euclidean"`` (default), ``"max_error"`` or ``"goal_completion"``.

    Raises:
        ConfigError: bad goal, unknown reward, or scorers missing an objective.
    """

    def __init__(
        self,
        scorers: ReferenceScorer | Sequence[ReferenceScorer],
        goal: Mapping[str, float],
        *,
        objectives: Sequence[Objective] | None = None,
        reward: RewardName | str = "euclidean",
    ) -> None:
        from hia_chain.scorers.text import BUILTIN_OBJECTIVES

        self.scorers = [scorers] if isinstance(scorers, ReferenceScorer) else list(scorers)
        objs = list(objectives) if objectives is not None else list(BUILTIN_OBJECTIVES.values())
        self.goal = validate_goal(objs, goal)
        covered = {name for s in self.scorers for name in s.objectives}
        if missing := sorted(set(self.goal) - covered):
            msg = f"No scorer produces objective(s) {missing}; the scorers cover {sorted(covered)}."
            raise ConfigError(msg)
        self.reward = get_reward_function(reward, objs)
        self.name = f"{self.reward.name}({', '.join(f'{k}={v:g}' for k, v in self.goal.items())})"

    def measure(self, prompt: str, texts: Sequence[str]) -> list[dict[str, float]]:
        """Every scorer's scores per text, merged into one dict per text."""
        merged = run_sync(lambda: score_responses(self.scorers, prompt, list(texts)))
        return [row or {} for row in merged.rows]  # rows are None only when a budget ran out

    def __call__(
        self, prompt: str, texts: Sequence[str], *, implicit: Sequence[float] | None = None
    ) -> list[float]:
        rewards = [self.reward(self.goal, s) for s in self.measure(prompt, texts)]
        return _check(rewards, len(texts), self.name)


def _prompt_and_response(tokenizer: Any, prompt: str, text: str) -> list[int]:
    """Ids of the prompt as a chat turn followed by the (partial) response text."""
    head = chat_ids(tokenizer, [{"role": "user", "content": prompt}])
    return head + list(tokenizer(text, add_special_tokens=False)["input_ids"])


class SequenceClassifierValue(ValueFunction):
    """A local sequence-classification reward model; the value is one of its logits.

    Args:
        model: a transformers ``*ForSequenceClassification`` model.
        tokenizer: its tokenizer.
        label: which logit is the reward (default 0, the usual single-head reward model).
        batch_size: texts per forward pass.
    """

    def __init__(self, model: Any, tokenizer: Any, *, label: int = 0, batch_size: int = 16) -> None:
        if batch_size < 1:
            msg = f"`batch_size` must be >= 1, got {batch_size}."
            raise ConfigError(msg)
        self.model, self.tokenizer, self.label, self.batch_size = (
            model,
            tokenizer,
            label,
            batch_size,
        )
        self.name = f"classifier[{label}]"

    @torch.no_grad()
    def __call__(
        self, prompt: str, texts: Sequence[str], *, implicit: Sequence[float] | None = None
    ) -> list[float]:
        out: list[float] = []
        pad = pad_token_id(self.tokenizer)
        for start in range(0, len(texts), self.batch_size):
            rows = [
                _prompt_and_response(self.tokenizer, prompt, t)
                for t in texts[start : start + self.batch_size]
            ]
            ids, mask = left_pad(rows, pad, model_device(self.model))
            positions = positions_from_mask(mask)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            out.extend(logits[:, self.label].float().tolist())
        return _check(out, len(texts), self.name)


class ValueHead(nn.Module):
    """A linear map from a prefix's last hidden state to the predicted final reward.

    Features are standardised with the training set's mean and std (stored as buffers), so the
    head is one ``nn.Linear`` on well-scaled inputs.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, hidden_size: int, meta: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        self.register_buffer("mean", torch.zeros(hidden_size))
        self.register_buffer("std", torch.ones(hidden_size))
        self.meta: dict[str, Any] = dict(meta or {})
        """What it was trained on (goal, reward, model name, data sizes, validation error)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, hidden)`` features -> ``(batch,)`` predicted rewards."""
        return self.linear((features - self.mean) / self.std).squeeze(-1)


@torch.no_grad()
def prefix_features(
    model: Any, tokenizer: Any, prompt: str, texts: Sequence[str], *, batch_size: int = 16
) -> torch.Tensor:
    """``(len(texts), hidden)`` last-layer hidden state at each prefix's final token.

    The prompt goes through the chat template as a user turn and the response text follows, so
    training (``fudge.py``) and inference see the same layout. Left padding with explicit
    positions makes the last column every row's final real token.
    """
    pad = pad_token_id(tokenizer)
    chunks = []
    for start in range(0, len(texts), batch_size):
        rows = [
            _prompt_and_response(tokenizer, prompt, t) for t in texts[start : start + batch_size]
        ]
        ids, mask = left_pad(rows, pad, model_device(model))
        positions = positions_from_mask(mask)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True
        )
        chunks.append(out.hidden_states[-1][:, -1, :].float())
    return torch.cat(chunks, dim=0)


class TokenRewardValue(ValueFunction):
    """FUDGE-style value: a small LM reads the prefix, a linear head predicts the final reward.

    Cost per chunk: one forward pass of the small LM over each row's prompt and prefix.

    Args:
        model: the small causal LM whose hidden states the head was trained on.
        tokenizer: its tokenizer.
        head: a trained :class:`ValueHead` (``fudge.train_value_head`` / ``load_value_head``).

    Raises:
        ConfigError: the head's input size differs from the model's hidden size.
    """

    def __init__(self, model: Any, tokenizer: Any, head: ValueHead) -> None:
        hidden = int(model.config.hidden_size)
        if head.linear.in_features != hidden:
            msg = f"The value head expects {head.linear.in_features} features but the model's hidden size is {hidden}."
            raise ConfigError(msg)
        self.model, self.tokenizer, self.head = model, tokenizer, head
        self.name = "token_reward"

    @torch.no_grad()
    def __call__(
        self, prompt: str, texts: Sequence[str], *, implicit: Sequence[float] | None = None
    ) -> list[float]:
        features = prefix_features(self.model, self.tokenizer, prompt, texts)
        return _check(self.head(features.to(self.head.mean.device)).tolist(), len(texts), self.name)


class ImplicitValue(ValueFunction):
    """β · Σ_t Σ_j (log π_tuned_j − log π_ref)(y_t): the guide pair's implicit reward.

    The decoder accumulates the sum as it samples, so this value reads a number per row.

    Raises:
        ConfigError: ``beta`` is not finite, or no guide streams ran (``implicit`` is None).
    """

    def __init__(self, beta: float = 1.0) -> None:
        if not math.isfinite(beta):
            msg = f"`beta` must be a finite number, got {beta!r}."
            raise ConfigError(msg)
        self.beta = float(beta)
        self.name = f"implicit(beta={beta:g})"
        self.needs_implicit = True

    def __call__(
        self, prompt: str, texts: Sequence[str], *, implicit: Sequence[float] | None = None
    ) -> list[float]:
        if implicit is None:
            msg = "ImplicitValue needs a tuned/reference guide pair during decoding; none ran."
            raise ConfigError(msg)
        return _check([self.beta * v for v in implicit], len(texts), self.name)
