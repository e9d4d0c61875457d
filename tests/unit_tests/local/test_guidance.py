"""Logits processors and the token-guidance combiner, on hand-built ramp tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.generation.logits_process import (  # noqa: E402
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.guidance import (  # noqa: E402
    ProcessorList,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    check_shared_vocabulary,
    goal_system_prompt,
    guided_logits,
    sampling_processors,
    with_system_prompt,
)
from hia_chain.scorers.text import BUILTIN_OBJECTIVES  # noqa: E402
from tests.unit_tests.local._tiny_ivg import WORDS, tiny_tokenizer  # noqa: E402

IDS = torch.zeros((2, 3), dtype=torch.long)


def ramp(batch: int = 2, vocab: int = 6) -> torch.Tensor:
    """Row r is ``[0, 1, ..., vocab-1] + r``: a strict order, the last token the likeliest."""
    return torch.arange(vocab, dtype=torch.float).repeat(batch, 1) + torch.arange(batch)[:, None]


def test_temperature_divides_without_mutating() -> None:
    scores = ramp()
    before = scores.clone()
    out = TemperatureProcessor(0.5)(IDS, scores)
    assert torch.equal(scores, before)
    assert torch.equal(out, before / 0.5)


def test_top_k_masks_exactly_the_rest() -> None:
    scores = ramp()
    before = scores.clone()
    out = TopKProcessor(2)(IDS, scores)
    assert torch.equal(scores, before)
    assert torch.isinf(out[:, :4]).all() and (out[:, :4] < 0).all()
    assert torch.equal(out[:, 4:], before[:, 4:])
    # ties at the k-th value are all kept; k larger than the vocabulary keeps everything
    tied = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert torch.isfinite(TopKProcessor(2)(IDS[:1], tied)).tolist() == [[False, True, True, False]]
    assert torch.isfinite(TopKProcessor(10)(IDS, scores)).all()


def test_top_p_keeps_the_smallest_nucleus() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    scores = probs.log()
    before = scores.clone()
    out = TopPProcessor(0.75)(IDS[:1], scores)
    assert torch.equal(scores, before)
    assert torch.isfinite(out).tolist() == [[True, True, False, False]]
    # the likeliest token always survives, even for a tiny top_p
    assert torch.isfinite(TopPProcessor(1e-6)(IDS[:1], scores)).tolist() == [
        [True, False, False, False]
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_processors_match_transformers(seed: int) -> None:
    scores = torch.randn((3, 50), generator=torch.Generator().manual_seed(seed)) * 3
    ours = ProcessorList([TemperatureProcessor(0.7), TopKProcessor(20), TopPProcessor(0.9)])
    theirs = [TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.9)]
    expected = scores
    for warper in theirs:
        expected = warper(IDS, expected)
    assert torch.equal(ours(IDS, scores), expected)


@pytest.mark.parametrize(
    ("factory", "bad"),
    [
        (TemperatureProcessor, 0),
        (TemperatureProcessor, -1.0),
        (TemperatureProcessor, math.nan),
        (TopKProcessor, 0),
        (TopKProcessor, 2.5),
        (TopKProcessor, True),
        (TopPProcessor, 0.0),
        (TopPProcessor, 1.5),
    ],
)
def test_processors_validate_and_show_the_bad_value(factory: type, bad: object) -> None:
    with pytest.raises(ConfigError, match=repr(bad).replace(".", r"\.")):
        factory(bad)


def test_sampling_processors_order_and_no_ops() -> None:
    chain = sampling_processors(0.7, top_k=5, top_p=0.9)
    assert [type(p) for p in chain] == [TemperatureProcessor, TopKProcessor, TopPProcessor]
    assert sampling_processors(1.0, None, 1.0) == []
    assert sampling_processors(0.0) == []  # greedy: the caller takes the argmax
    with pytest.raises(ConfigError, match="-0.5"):
        sampling_processors(-0.5)


def test_guided_logits_is_the_formula_on_full_vocab() -> None:
    g = torch.Generator().manual_seed(0)
    base, t1, t2, ref = (torch.randn((2, 7), generator=g) for _ in range(4))
    copies = [x.clone() for x in (base, t1, t2, ref)]
    out = guided_logits(base, [t1, t2], ref, 1.5)
    torch.testing.assert_close(out, base + 1.5 * ((t1 - ref) + (t2 - ref)))
    assert all(torch.equal(a, b) for a, b in zip((base, t1, t2, ref), copies, strict=True))
    zero = guided_logits(base, [t1], ref, 0.0)
    assert torch.equal(zero, base) and zero is not base
    # the base as its own reference: (1 - beta) z_base + beta z_tuned; beta = 1 is the tuned model
    torch.testing.assert_close(guided_logits(base, [t1], base, 1.0), t1)


def test_guided_logits_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match="shapes"):
        guided_logits(torch.zeros(2, 5), [torch.zeros(2, 6)], torch.zeros(2, 5), 1.0)
    with pytest.raises(ConfigError, match="inf"):
        guided_logits(torch.zeros(2, 5), [torch.zeros(2, 5)], torch.zeros(2, 5), math.inf)


def test_shared_vocabulary_compares_real_tokens_not_padded_widths() -> None:
    tok = tiny_tokenizer()
    n = len(tok.get_vocab())
    assert (
        check_shared_vocabulary(tok, tiny_tokenizer(), base_logits_width=48, guide_logits_width=64)
        == n
    )
    with pytest.raises(ConfigError, match="outputs 30 logits"):
        check_shared_vocabulary(tok, tok, base_logits_width=30)


def test_vocabulary_mismatch_names_the_chunk_level_way_out() -> None:
    other = tiny_tokenizer(list(reversed(WORDS)))
    with pytest.raises(ConfigError, match="chunk-level guidance"):
        check_shared_vocabulary(tiny_tokenizer(), other)


def test_goal_system_prompt_uses_the_objectives_words() -> None:
    objs = list(BUILTIN_OBJECTIVES.values())
    high = goal_system_prompt({"sentiment": 4}, objs)
    assert "enthusiastic and very positive" in high
    low = goal_system_prompt({"sentiment": 0, "verbosity": 0}, objs)
    assert "gloomy and negative" in low and "one short sentence" in low
    assert "moderate complexity" in goal_system_prompt({"complexity": 2}, objs)


def test_with_system_prompt_appends_or_inserts() -> None:
    conv = [{"role": "user", "content": "hi"}]
    assert with_system_prompt(conv, "S") == [{"role": "system", "content": "S"}, *conv]
    withsys = [{"role": "system", "content": "Be brief."}, *conv]
    assert with_system_prompt(withsys, "S")[0] == {"role": "system", "content": "Be brief.\n\nS"}
    assert withsys[0]["content"] == "Be brief."
