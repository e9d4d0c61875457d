"""IVG on the real embedded model: guidance toward positive sentiment must show in VADER.

Controlled-sentiment task (the IVG paper's first task) on IMDB review prefixes: the same
prefixes and seeds decoded without guidance and with IVG (token guidance from the
tuning-free pair at beta = 2, plus chunk-level beam search on the sentiment reward). With the
self-contrast pair beta = 1 would be the same as prompting (DESIGN §3), hence beta = 2 and the
chunk value. About 2 minutes on one thread.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imdb_reviews.jsonl"
PREFIXES = 6
SEEDS = (0, 1)
NEW_TOKENS = 24


@pytest.fixture
def embedded(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """The embedded model, loaded once per process (``load_embedded`` caches it)."""
    pytest.importorskip("torch")
    from hia_chain.errors import LocalExtraMissingError
    from hia_chain.local.embedded import embedded_model_path, load_embedded

    try:
        path = request.getfixturevalue("embedded_path")
    except pytest.FixtureLookupError:  # the shared fixture is not there: find the model ourselves
        try:
            path = embedded_model_path()
        except LocalExtraMissingError as exc:
            pytest.skip(f"embedded model unavailable: {exc}")
    return load_embedded(path)


def _prefixes() -> list[str]:
    if not DATA.is_file():
        pytest.skip(f"IMDB prefixes not found at {DATA} (shared benchmark data is absent)")
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:PREFIXES]]
    return [f"Continue this movie review: {r['prefix']}" for r in rows]


def _mean_compound(llm: Any, prompts: list[str], seed: int) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    texts = [llm.invoke(p, seed=seed).content for p in prompts]
    return statistics.mean(analyzer.polarity_scores(t)["compound"] for t in texts)


def test_ivg_raises_sentiment_beyond_seed_spread(embedded: tuple[Any, Any]) -> None:
    from hia_chain.local.ivg_chat_model import IVGChatModel

    model, tokenizer = embedded
    prompts = _prefixes()
    common = {
        "hf_model": model,
        "tokenizer": tokenizer,
        "goal": {"sentiment": 4},
        "max_tokens": NEW_TOKENS,
    }
    plain = IVGChatModel(guidance="none", **common)
    guided = IVGChatModel(
        guidance="both", beta=2.0, beam_width=2, successors_per_beam=2, chunk_tokens=8, **common
    )
    base = [_mean_compound(plain, prompts, s) for s in SEEDS]
    ivg = [_mean_compound(guided, prompts, s) for s in SEEDS]
    spread = max(max(base) - min(base), max(ivg) - min(ivg))
    effect = statistics.mean(ivg) - statistics.mean(base)
    report = f"VADER compound per seed: plain {base}, IVG {ivg}; effect {effect:.3f}, spread {spread:.3f}"
    print(report)
    assert effect > spread, report


def test_cli_json_on_the_real_model(
    embedded: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from hia_chain.cli import main

    assert main(["ivg", "Describe a sunny day.", "--goal", "sentiment=4", "--guidance", "token",
                 "--max-tokens", "12", "--seed", "0", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["text"] and out["new_tokens"] <= 12 and "sentiment" in out["scores"]


def _repeated_4grams(tokenizer: Any, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
    return len(grams) - len(set(grams))


def test_default_cli_output_repeats_no_4gram(
    embedded: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The default `hia-chain ivg` bans repeated 4-grams; with repetition control off, the same
    prompt and seed repeat one (the 135M model loops: "make a difference in a film" twice)."""
    from hia_chain.cli import main

    _, tokenizer = embedded
    base = ["ivg", "Continue this movie review: NBC had a chance to make a powerful",
            "--max-tokens", "64", "--seed", "0", "--json"]  # fmt: skip

    def text(*extra: str) -> str:
        assert main([*base, *extra]) == 0
        return json.loads(capsys.readouterr().out)["text"]

    default = text()
    off = text("--repetition-penalty", "1", "--no-repeat-ngram", "0")
    assert _repeated_4grams(tokenizer, off) > 0, off  # the check can fail
    assert _repeated_4grams(tokenizer, default) == 0, default
