"""Training data and a FUDGE-style value head for chunk-level guidance, made by the package.

The recipe, all local and offline:

1. :func:`sample_and_score` samples continuations of each prompt from the base model and
   scores each finished text with a reference scorer and the goal's reward R(G, r);
2. :func:`train_value_head` regresses that *final* reward on the hidden state of every
   prefix of the continuation (FUDGE: a prefix's value is the reward its continuations
   reach), with a linear :class:`~hia_chain.local.values.ValueHead`;
3. :class:`~hia_chain.local.values.TokenRewardValue` then scores prefixes during the search;
   :func:`save_value_head` / :func:`load_value_head` keep the head between runs.

The head is fitted in closed form (ridge regression in float64 with torch, the penalty picked
on prompts held out from training) rather than by gradient steps: a linear head on fixed
features has an exact optimum, so there are no learning rates or epochs to tune and the fit
takes milliseconds; the cost is all in sampling and reading hidden states.

Plugging a DPO-tuned pair as the token-guidance pair (``trl`` is optional, not a dependency):
the same samples give preference pairs, a DPO run tunes a copy of the small model, and the
tuned model and its untouched reference become the explicit guide pair::

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    samples = sample_and_score(model, tok, prompts, scorer, {"sentiment": 4})
    pairs = Dataset.from_list(preference_pairs(samples))   # prompt / chosen / rejected
    policy = copy.deepcopy(model).train()                   # import copy
    DPOTrainer(model=policy, ref_model=model, args=DPOConfig(output_dir="dpo", beta=0.1),
               train_dataset=pairs, processing_class=tok).train()
    llm = IVGChatModel(hf_model=large_model, tokenizer=tok,  # any model with this vocabulary
                       tuned_model=policy.eval(), reference_model=model, guide_tokenizer=tok,
                       guidance="both", goal={"sentiment": 4})

The pair must share the base model's vocabulary (checked: a mismatch raises ConfigError).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hia_chain.errors import ConfigError
from hia_chain.goals import Objective, RewardName
from hia_chain.local._extra import require_torch
from hia_chain.local.decoding import guided_decode, seeded_generator
from hia_chain.local.hf_adapter import (
    CausalStream,
    chat_ids,
    eos_token_ids,
    left_pad,
    model_device,
    pad_token_id,
    positions_from_mask,
    real_vocab_size,
)
from hia_chain.local.settings import DecodeSettings
from hia_chain.local.values import ScorerValue, ValueHead
from hia_chain.scorers.base import ReferenceScorer

require_torch()

import torch  # noqa: E402

__all__ = [
    "Sample",
    "load_value_head",
    "preference_pairs",
    "sample_and_score",
    "save_value_head",
    "train_value_head",
]

_RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass(frozen=True)
class Sample:
    """One sampled continuation of a prompt and the reward its final text got."""

    prompt: str
    token_ids: tuple[int, ...]
    text: str
    reward: float


def sample_and_score(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    scorer: ReferenceScorer | Sequence[ReferenceScorer],
    goal: Mapping[str, float],
    *,
    objectives: Sequence[Objective] | None = None,
    reward: RewardName | str = "euclidean",
    samples_per_prompt: int = 4,
    max_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[Sample]:
    """Sample ``samples_per_prompt`` continuations per prompt and score their final texts.

    Each prompt is encoded once and its KV cache is copied to the sampled rows.

    Raises:
        ConfigError: bad goal or sizes.
    """
    if samples_per_prompt < 1:
        msg = f"`samples_per_prompt` must be >= 1, got {samples_per_prompt}."
        raise ConfigError(msg)
    settings = DecodeSettings(max_tokens=max_tokens, temperature=temperature)
    value = ScorerValue(scorer, goal, objectives=objectives, reward=reward)
    pad, vocab, eos = (
        pad_token_id(tokenizer),
        real_vocab_size(tokenizer),
        eos_token_ids(tokenizer, model),
    )
    generator, _ = seeded_generator(model_device(model), seed)
    samples: list[Sample] = []
    for prompt in prompts:
        stream = CausalStream.prefill(
            model, [chat_ids(tokenizer, [{"role": "user", "content": prompt}])], pad
        )
        stream.reorder(torch.zeros(samples_per_prompt, dtype=torch.long))
        out = guided_decode(
            stream,
            None,
            settings.processors(),
            max_new_tokens=settings.max_tokens,
            vocab_size=vocab,
            eos_ids=eos,
            pad_id=pad,
            generator=generator,
            sample=settings.sample,
            feed_last=False,
        )
        ids = [out.tokens[i, : int(n)].tolist() for i, n in enumerate(out.new_tokens)]
        texts = [tokenizer.decode(t, skip_special_tokens=True) for t in ids]
        rewards = value(prompt, texts)
        samples += [
            Sample(prompt, tuple(i), x, r) for i, x, r in zip(ids, texts, rewards, strict=True)
        ]
    return samples


def preference_pairs(samples: Sequence[Sample]) -> list[dict[str, str]]:
    """``{"prompt", "chosen", "rejected"}`` per prompt (best vs worst reward), for DPO."""
    by_prompt: dict[str, list[Sample]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt, []).append(s)
    pairs = []
    for prompt, group in by_prompt.items():
        best, worst = max(group, key=lambda s: s.reward), min(group, key=lambda s: s.reward)
        if best.reward > worst.reward:
            pairs.append({"prompt": prompt, "chosen": best.text, "rejected": worst.text})
    return pairs


@torch.no_grad()
def _prefix_dataset(
    model: Any, tokenizer: Any, samples: Sequence[Sample], stride: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Hidden state at every ``stride``-th prefix of each sample (one pass per sample), its
    sample's final reward, and its prompt (for a split by prompt)."""
    pad, eos = pad_token_id(tokenizer), eos_token_ids(tokenizer, model)
    feats, labels, groups = [], [], []
    for s in samples:
        head = chat_ids(tokenizer, [{"role": "user", "content": s.prompt}])
        response = [t for t in s.token_ids if t not in eos]  # inference reads decoded text
        if not response:
            continue
        ids, mask = left_pad([head + response], pad, model_device(model))
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
            output_hidden_states=True,
        )
        ends = sorted({*range(stride, len(response) + 1, stride), len(response)})
        hidden = out.hidden_states[-1][0]
        for end in ends:  # the prefix of `end` response tokens ends at position len(head)+end-1
            feats.append(hidden[len(head) + end - 1].float().cpu())
            labels.append(s.reward)
            groups.append(s.prompt)
    if not feats:
        msg = "Every sample is empty (it ended at once): nothing to train the value head on."
        raise ConfigError(msg)
    return torch.stack(feats), torch.tensor(labels), groups


def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """Weights and (unpenalised) intercept of ridge regression of ``y`` on ``x``.

    Centres both sides on these rows, so the intercept is right for any rows, including a
    refit on more rows than the standardisation was computed on.
    """
    x64, y64 = x.double(), y.double()
    x_mean, y_mean = x64.mean(0), y64.mean()
    xc = x64 - x_mean
    gram = xc.T @ xc + lam * torch.eye(x64.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, xc.T @ (y64 - y_mean))
    return weights.float(), float(y_mean - x_mean @ weights)


def train_value_head(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Sample],
    *,
    prefix_stride: int = 4,
    validation_fraction: float = 0.25,
    seed: int = 0,
) -> ValueHead:
    """Fit a linear head from prefix hidden states to the final reward (FUDGE-style).

    Args:
        model: the small causal LM whose last hidden state is the feature (the same model
            must be given to ``TokenRewardValue``).
        tokenizer: its tokenizer.
        samples: scored continuations from :func:`sample_and_score`.
        prefix_stride: a training row every this many response tokens (and the full text).
        validation_fraction: share of *prompts* held out to pick the ridge penalty and report
            the error (prefixes of one prompt never straddle the split).
        seed: shuffles the prompt split.

    Returns:
        The head; ``head.meta`` holds the penalty, row counts and validation MSE / R² next to
        the MSE of always predicting the mean.

    Raises:
        ConfigError: no samples, or a bad stride or fraction.
    """
    if not samples or prefix_stride < 1 or not 0 <= validation_fraction < 1:
        msg = f"Need samples, `prefix_stride` >= 1 and 0 <= `validation_fraction` < 1; got {len(samples)} samples, {prefix_stride}, {validation_fraction}."
        raise ConfigError(msg)
    x, y, groups = _prefix_dataset(model, tokenizer, samples, prefix_stride)
    prompts = sorted(set(groups))
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: math.floor(len(prompts) * validation_fraction)])
    val = torch.tensor([g in held for g in groups])
    mean, std = x[~val].mean(0), x[~val].std(0, unbiased=False).clamp(min=1e-6)
    z = (x - mean) / std
    results = {}
    for lam in _RIDGE_GRID if val.any() else (1.0,):
        w, b = _ridge(z[~val], y[~val], lam)
        pred = z[val] @ w + b
        results[lam] = float(((pred - y[val]) ** 2).mean()) if val.any() else math.nan
    lam = min(results, key=lambda k: results[k]) if val.any() else 1.0
    weights, bias = _ridge(z, y, lam)  # refit on every row with the chosen penalty
    baseline = float(((y[val] - y[~val].mean()) ** 2).mean()) if val.any() else math.nan
    head = ValueHead(
        x.shape[1],
        meta={
            "ridge": lam,
            "rows": int(len(y)),
            "validation_rows": int(val.sum()),
            "validation_mse": results[lam],
            "baseline_mse": baseline,
            "validation_r2": 1 - results[lam] / baseline if baseline and baseline > 0 else math.nan,
            "prefix_stride": prefix_stride,
            "samples": len(samples),
            "model": str(getattr(model.config, "_name_or_path", "")),
        },
    )
    with torch.no_grad():
        head.mean.copy_(mean)
        head.std.copy_(std)
        head.linear.weight.copy_(weights.view(1, -1))
        head.linear.bias.fill_(bias)
    return head.eval()


def save_value_head(head: ValueHead, path: str | Path) -> None:
    """Write the head's weights, standardisation and ``meta`` to one torch file."""
    torch.save(
        {
            "hidden_size": head.linear.in_features,
            "state_dict": head.state_dict(),
            "meta": head.meta,
        },
        Path(path),
    )


def load_value_head(path: str | Path) -> ValueHead:
    """Read a head written by :func:`save_value_head` (tensors and plain data only).

    Raises:
        ConfigError: the file is not a saved value head.
    """
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob or "hidden_size" not in blob:
        msg = f"{path} is not a value head saved by save_value_head."
        raise ConfigError(msg)
    head = ValueHead(int(blob["hidden_size"]), meta=blob.get("meta"))
    head.load_state_dict(blob["state_dict"])
    return head.eval()
