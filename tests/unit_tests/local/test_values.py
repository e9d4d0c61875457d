"""Value functions: explicit scorers, a classifier, the FUDGE-style head and the implicit value."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import LlamaConfig, LlamaForSequenceClassification  # noqa: E402

from hia_chain.errors import ConfigError, RewardModelError  # noqa: E402
from hia_chain.goals import Objective  # noqa: E402
from hia_chain.local.values import (  # noqa: E402
    ImplicitValue,
    ScorerValue,
    SequenceClassifierValue,
    TokenRewardValue,
    ValueHead,
    prefix_features,
)
from hia_chain.scorers.base import ReferenceScorer  # noqa: E402
from hia_chain.scorers.text import SentimentScorer, VerbosityScorer  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
TEXTS = ["good great wonderful love", "bad awful terrible hate", "the plot"]


def test_scorer_value_rewards_closeness_to_the_goal() -> None:
    up = ScorerValue(SentimentScorer(), {"sentiment": 4})
    down = ScorerValue(SentimentScorer(), {"sentiment": 0})
    pos, neg, neutral = up("prompt", TEXTS)
    assert pos > neutral > neg and all(-1 <= v <= 0 for v in (pos, neg, neutral))
    assert down("prompt", TEXTS)[1] > down("prompt", TEXTS)[0]
    assert up.name == "euclidean(sentiment=4)"


def test_scorer_value_merges_scorers_and_checks_the_goal() -> None:
    both = ScorerValue([SentimentScorer(), VerbosityScorer()], {"sentiment": 4, "verbosity": 0})
    measured = both.measure("p", TEXTS)
    assert set(measured[0]) == {"sentiment", "verbosity"}
    assert len(both("p", TEXTS)) == 3
    with pytest.raises(ConfigError, match="verbosity"):
        ScorerValue(SentimentScorer(), {"verbosity": 1})
    with pytest.raises(ConfigError, match="outside"):
        ScorerValue(SentimentScorer(), {"sentiment": 9})
    with pytest.raises(ConfigError, match="reward"):
        ScorerValue(SentimentScorer(), {"sentiment": 4}, reward="nope")
    custom = [Objective("sentiment", low=-1, high=1)]
    assert (
        ScorerValue(SentimentScorer(low=-1, high=1), {"sentiment": 1}, objectives=custom)(
            "p", TEXTS
        )[0]
        > -0.2
    )


class NaNScorer(ReferenceScorer):
    objectives = ("sentiment",)

    async def ascore(self, prompt, responses, context=None):
        return [{"sentiment": math.nan} for _ in responses]


def test_scorer_value_rejects_non_finite_rewards() -> None:
    with pytest.raises(RewardModelError):
        ScorerValue(NaNScorer(), {"sentiment": 4})("p", ["x"])


async def test_async_scorers_run_from_sync_code_inside_a_running_loop() -> None:
    # invoke() called from async code: this thread already runs a loop
    value = ScorerValue(SentimentScorer(), {"sentiment": 4})
    assert len(value("p", TEXTS)) == 3


def test_implicit_value_scales_the_accumulated_log_ratio() -> None:
    assert ImplicitValue(2.0)("p", ["a", "b"], implicit=[0.5, -1.0]) == [1.0, -2.0]
    with pytest.raises(ConfigError, match="guide pair"):
        ImplicitValue()("p", ["a"])
    with pytest.raises(ConfigError, match="inf"):
        ImplicitValue(math.inf)
    assert (
        ImplicitValue().needs_implicit
        and not ScorerValue(SentimentScorer(), {"sentiment": 4}).needs_implicit
    )


def tiny_classifier() -> LlamaForSequenceClassification:
    config = LlamaConfig(
        vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_labels=2, pad_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForSequenceClassification(config).eval()


def test_sequence_classifier_value_is_batch_invariant() -> None:
    model = tiny_classifier()
    batched = SequenceClassifierValue(model, TOK, label=1, batch_size=3)("p", TEXTS)
    single = [SequenceClassifierValue(model, TOK, label=1)("p", [t])[0] for t in TEXTS]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(batched)) == 3
    with pytest.raises(ConfigError, match="batch_size"):
        SequenceClassifierValue(model, TOK, batch_size=0)


def test_prefix_features_are_left_pad_invariant() -> None:
    model = tiny_model()
    batch = prefix_features(model, TOK, "p", TEXTS)
    alone = torch.cat([prefix_features(model, TOK, "p", [t]) for t in TEXTS])
    assert batch.shape == (3, 32)
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


def test_token_reward_value_applies_the_head() -> None:
    model = tiny_model()
    head = ValueHead(32)
    with torch.no_grad():
        head.linear.weight.normal_()
        head.mean.fill_(0.1)
        head.std.fill_(2.0)
    values = TokenRewardValue(model, TOK, head)("p", TEXTS)
    features = prefix_features(model, TOK, "p", TEXTS)
    expected = (((features - 0.1) / 2.0) @ head.linear.weight[0] + head.linear.bias).tolist()
    assert values == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ConfigError, match="hidden size is 32"):
        TokenRewardValue(model, TOK, ValueHead(16))
