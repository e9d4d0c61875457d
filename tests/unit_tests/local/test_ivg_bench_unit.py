"""The IVG sentiment bench's distinct-2 column, on the tiny Llama (no downloads).

Why: the column is the bench's evidence that repetition control works; it must measure each
answer's own repetition and react to the setting it reports on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("vaderSentiment")

from hia_chain.bench.ivg_speed import distinct_n, sentiment_steering  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402


def test_distinct_n_is_the_share_of_distinct_word_ngrams_of_one_answer() -> None:
    assert distinct_n("the movie was good") == 1.0
    assert distinct_n("Good good GOOD good", 2) == pytest.approx(1 / 3)
    assert distinct_n("a b a b", 2) == pytest.approx(2 / 3)
    assert distinct_n("one", 2) == 1.0 and distinct_n("", 2) == 1.0
    assert distinct_n("a b a b", 1) == 0.5


def test_sentiment_bench_reports_distinct2_that_repetition_control_moves(tmp_path: Path) -> None:
    data = tmp_path / "imdb.jsonl"
    data.write_text("\n".join(json.dumps({"prefix": p}) for p in ("the plot", "this movie was")))
    methods = {
        "plain, no control": {
            "guidance": "none",
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
        },
        "plain, no repeated bigram": {"guidance": "none", "no_repeat_ngram_size": 2},
    }
    rows = sentiment_steering(
        2, seeds=(0, 1), max_new_tokens=24, methods=methods, data_path=data,
        model=tiny_model(), tokenizer=tiny_tokenizer(),
    )  # fmt: skip
    by = {r["method"]: r for r in rows}
    # the word-level tokenizer makes word bigrams token bigrams: banning them makes them distinct
    assert by["plain, no repeated bigram"]["distinct2"] == 1.0
    assert by["plain, no control"]["distinct2"] < 1.0
    assert all(0 <= r["distinct2_spread"] <= 1 and r["tokens_per_second"] > 0 for r in rows)
