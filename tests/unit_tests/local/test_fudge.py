"""FUDGE-style value head: data from the package's own sampler and scorer, fit, save, load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.fudge import (  # noqa: E402
    Sample,
    load_value_head,
    preference_pairs,
    sample_and_score,
    save_value_head,
    train_value_head,
)
from hia_chain.local.values import TokenRewardValue, prefix_features  # noqa: E402
from hia_chain.scorers.text import SentimentScorer  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
PROMPTS = [
    "this movie",
    "the plot",
    "i love",
    "it was",
    "the actors",
    "a story",
    "the film",
    "this story",
]
GOAL = {"sentiment": 4}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return sample_and_score(
        tiny_model(),
        TOK,
        PROMPTS,
        SentimentScorer(),
        GOAL,
        samples_per_prompt=6,
        max_tokens=10,
        seed=0,
    )


def test_sample_and_score_is_seeded_and_scored(samples: list[Sample]) -> None:
    assert len(samples) == len(PROMPTS) * 6
    assert all(-1 <= s.reward <= 0 and 0 < len(s.token_ids) <= 10 for s in samples)
    assert len({s.reward for s in samples}) > 5
    again = sample_and_score(
        tiny_model(),
        TOK,
        PROMPTS[:1],
        SentimentScorer(),
        GOAL,
        samples_per_prompt=6,
        max_tokens=10,
        seed=0,
    )
    assert again == samples[:6]
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        sample_and_score(tiny_model(), TOK, PROMPTS, SentimentScorer(), GOAL, samples_per_prompt=0)


def test_head_recovers_a_planted_linear_reward(samples: list[Sample], tmp_path: Path) -> None:
    """With one row per sample (stride beyond every length) and a reward that is linear in the
    full text's hidden state, ridge on held-out prompts must find it."""
    model = tiny_model()
    features = torch.cat([prefix_features(model, TOK, s.prompt, [s.text]) for s in samples])
    planted = torch.randn(features.shape[1], generator=torch.Generator().manual_seed(0))
    rewards = (features - features.mean(0)) / features.std(0) @ planted
    planted_samples = [replace(s, reward=float(r)) for s, r in zip(samples, rewards, strict=True)]
    head = train_value_head(
        model, TOK, planted_samples, prefix_stride=100, validation_fraction=0.25
    )
    assert head.meta["rows"] == len(samples) and head.meta["validation_rows"] == 12
    assert head.meta["validation_r2"] > 0.9 and head.meta["ridge"] <= 1.0
    value = TokenRewardValue(model, TOK, head)
    predicted = torch.tensor([value(s.prompt, [s.text])[0] for s in planted_samples])
    assert torch.corrcoef(torch.stack([predicted, rewards]))[0, 1] > 0.95
    path = tmp_path / "head.pt"
    save_value_head(head, path)
    loaded = load_value_head(path)
    assert loaded.meta == head.meta
    first = planted_samples[0]
    assert TokenRewardValue(model, TOK, loaded)(first.prompt, [first.text]) == value(
        first.prompt, [first.text]
    )


def test_head_trains_on_every_prefix_of_real_samples(samples: list[Sample]) -> None:
    head = train_value_head(tiny_model(), TOK, samples, prefix_stride=2)
    meta = head.meta
    assert meta["samples"] == len(samples) and meta["rows"] > 4 * len(samples)
    assert meta["validation_rows"] > 0 and meta["ridge"] > 0 and meta["baseline_mse"] > 0


def test_training_rejects_bad_input(samples: list[Sample], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prefix_stride"):
        train_value_head(tiny_model(), TOK, samples, prefix_stride=0)
    with pytest.raises(ConfigError, match="samples"):
        train_value_head(tiny_model(), TOK, [])
    empty = [Sample("p", (TOK.eos_token_id,), "", -0.5)]
    with pytest.raises(ConfigError, match="empty"):
        train_value_head(tiny_model(), TOK, empty)
    bogus = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    with pytest.raises(ConfigError, match="not a value head"):
        load_value_head(bogus)


def test_preference_pairs_take_best_and_worst(samples: list[Sample]) -> None:
    pairs = preference_pairs(samples)
    assert 0 < len(pairs) <= len(PROMPTS)
    first = [s for s in samples if s.prompt == pairs[0]["prompt"]]
    assert pairs[0]["chosen"] == max(first, key=lambda s: s.reward).text
    assert pairs[0]["rejected"] == min(first, key=lambda s: s.reward).text
    assert preference_pairs([Sample("p", (5,), "a", -0.1), Sample("p", (6,), "b", -0.1)]) == []


def test_ridge_intercept_is_right_on_uncentred_features() -> None:
    """A refit on more rows than the standardisation saw must not shift the predictions."""
    import torch

    from hia_chain.local.fudge import _ridge

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=gen) + 5.0  # far from centred
    w_true = torch.tensor([0.5, -1.0, 2.0])
    y = 3.0 + x @ w_true
    w, b = _ridge(x, y, 1e-6)
    torch.testing.assert_close(w, w_true, atol=1e-3, rtol=1e-3)
    assert abs(b - 3.0) < 1e-2
