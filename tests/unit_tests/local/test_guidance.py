"""The token-guidance combiner, the guide prompt and the vocabulary check."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.guidance import (  # noqa: E402
    check_shared_vocabulary,
    goal_system_prompt,
    guided_logits,
    with_system_prompt,
)
from hia_chain.scorers.text import BUILTIN_OBJECTIVES  # noqa: E402
from tests.unit_tests.local._tiny_ivg import WORDS, tiny_tokenizer  # noqa: E402


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
