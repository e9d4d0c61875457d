"""Built-in text metrics: known values, range, monotonicity, scale mapping, configuration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.scorers.text import (
    BUILTIN_OBJECTIVES,
    ComplexityScorer,
    SentimentScorer,
    VerbosityScorer,
    builtin_scorer,
    builtin_scorers,
    count_words,
)

SIMPLE = "The cat is big. It is red. I like it. We play a lot."
PLAIN = (
    "Vaccines train the immune system to recognize a germ. They contain a harmless piece "
    "of the germ, so the body learns to make antibodies without getting sick."
)
TECHNICAL = (
    "Photosynthesis is the biochemical process by which chlorophyll-containing organisms "
    "convert electromagnetic radiation into chemical energy, synthesizing carbohydrates "
    "from atmospheric carbon dioxide through enzymatically catalyzed reactions."
)


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_count_words_ignores_markdown_and_punctuation() -> None:
    assert count_words("- Hello, world! **It's** fine.\n- 42 items") == 6
    assert count_words("") == 0
    assert count_words("  *** --- ") == 0


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0.0), (1, 0.0), (10, 0.0), (30, 1.0), (80, 2.0), (160, 3.0), (320, 4.0), (5000, 4.0)],
)
def test_verbosity_anchor_values(n: int, expected: float) -> None:
    assert VerbosityScorer().score_text(words(n)) == pytest.approx(expected)


def test_verbosity_interpolates_in_log_words() -> None:
    v = VerbosityScorer()
    # Geometric midpoint of two anchors lands halfway between their levels.
    assert v.score_text(words(round(math.sqrt(30 * 80)))) == pytest.approx(1.5, abs=0.02)
    # What the embedded model writes (DESIGN §4): one short sentence ~13 words is within
    # tolerance of 0; its plain ~100-word answers sit a little above 2.
    assert v.score_text(words(13)) < 0.5
    assert 2.0 < v.score_text(words(100)) < 2.5


def test_verbosity_custom_scale_and_anchors() -> None:
    v = VerbosityScorer(low=1, high=10, anchors=(5, 50))
    assert v.score_text(words(5)) == 1
    assert v.score_text(words(50)) == 10
    assert v.score_text(words(round(math.sqrt(250)))) == pytest.approx(5.5, abs=0.05)
    assert v.objectives == ("verbosity",)
    assert VerbosityScorer(name="length").objectives == ("length",)


@pytest.mark.parametrize("anchors", [(10,), (10, 10), (30, 10), (0, 10), (-1, 5), (1, math.nan)])
def test_verbosity_rejects_bad_anchors(anchors: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="anchors"):
        VerbosityScorer(anchors=anchors)


@pytest.mark.parametrize("cls", [VerbosityScorer, ComplexityScorer, SentimentScorer])
def test_rejects_bad_scale(cls: type) -> None:
    with pytest.raises(ConfigError, match="high"):
        cls(low=4, high=0)


@settings(deadline=None)
@given(st.integers(0, 2000), st.integers(0, 2000))
def test_verbosity_is_monotone_in_word_count(a: int, b: int) -> None:
    v = VerbosityScorer()
    lo, hi = sorted((a, b))
    assert v.score_text(words(lo)) <= v.score_text(words(hi))


RANGE_SCORERS = (
    VerbosityScorer(low=-1, high=2),
    ComplexityScorer(),
    SentimentScorer(low=1, high=5),
)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_every_scorer_stays_in_range_and_finite(text: str) -> None:
    for scorer in RANGE_SCORERS:
        score = scorer.score_text(text)
        assert math.isfinite(score)
        assert scorer.low <= score <= scorer.high


def test_complexity_known_values() -> None:
    c = ComplexityScorer()
    assert c.score_text("") == 0.0
    assert c.score_text("   \n") == 0.0
    assert c.score_text("Hi.") == 0.0  # FK grade is negative for one tiny word: clamps, no NaN
    simple, plain, technical = (c.score_text(t) for t in (SIMPLE, PLAIN, TECHNICAL))
    assert simple == 0.0
    assert 1.0 < plain < 3.5
    assert technical == 4.0
    assert simple < plain < technical


@pytest.mark.parametrize(
    ("grade", "expected"),
    [(2.0, 0.0), (4.5, 0.0), (6.5, 1.0), (8.2, 1.85), (11.2, 3.0667), (20, 4.0)],
)
def test_complexity_grade_mapping(
    monkeypatch: pytest.MonkeyPatch, grade: float, expected: float
) -> None:
    import hia_chain.scorers.text as text_mod

    monkeypatch.setattr(text_mod.textstat, "flesch_kincaid_grade", lambda t: grade)
    assert ComplexityScorer().score_text("some text") == pytest.approx(expected, abs=1e-3)


def test_complexity_nan_grade_scores_low(monkeypatch: pytest.MonkeyPatch) -> None:
    import hia_chain.scorers.text as text_mod

    monkeypatch.setattr(text_mod.textstat, "flesch_kincaid_grade", lambda t: math.nan)
    assert ComplexityScorer(low=1, high=3).score_text("x y z") == 1.0


def test_sentiment_known_values_and_order() -> None:
    s = SentimentScorer()
    assert s.score_text("") == 2.0  # compound 0 maps to the midpoint
    pos = s.score_text("I love this wonderful, delightful day! Everything is great.")
    neg = s.score_text("This is terrible, sad and awful. I hate it.")
    neutral = s.score_text("The meeting is at three in room four.")
    assert neg < 1.0 < neutral == 2.0 < 3.0 < pos
    scaled = SentimentScorer(low=-1, high=1)
    compound = scaled._analyzer.polarity_scores("I love it")["compound"]
    assert scaled.score_text("I love it") == pytest.approx(compound)


def test_sentiment_reuses_one_analyzer() -> None:
    s = SentimentScorer()
    analyzer = s._analyzer
    s.score_text("good")
    s.score_text("bad")
    assert s._analyzer is analyzer
    assert SentimentScorer()._analyzer is not analyzer


async def test_ascore_batches_and_validates() -> None:
    out = await VerbosityScorer().ascore("prompt", [words(30), "", words(320)])
    assert out == [{"verbosity": 1.0}, {"verbosity": 0.0}, {"verbosity": 4.0}]
    assert await ComplexityScorer().ascore("p", []) == []


def test_builtin_objectives_describe_both_ends() -> None:
    assert sorted(BUILTIN_OBJECTIVES) == ["complexity", "sentiment", "verbosity"]
    for name, obj in BUILTIN_OBJECTIVES.items():
        assert obj.name == name
        assert (obj.low, obj.high) == (0.0, 4.0)
        assert "0 =" in obj.description and "4 =" in obj.description
        assert obj.low_label != "low" and obj.high_label != "high"
    assert "one short sentence" in BUILTIN_OBJECTIVES["verbosity"].description


def test_builtin_scorer_lookup() -> None:
    assert isinstance(builtin_scorer("verbosity"), VerbosityScorer)
    scorers = builtin_scorers(["sentiment", "complexity"])
    assert [type(s) for s in scorers] == [SentimentScorer, ComplexityScorer]
    assert [s.objectives for s in scorers] == [("sentiment",), ("complexity",)]
    rescaled = builtin_scorer(Objective("sentiment", low=1, high=10))
    assert (rescaled.low, rescaled.high) == (1.0, 10.0)  # type: ignore[attr-defined]


def test_builtin_scorer_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError, match="complexity, sentiment, verbosity"):
        builtin_scorer("helpfulness")
    with pytest.raises(ConfigError, match="'tone'"):
        builtin_scorers(["verbosity", "tone"])
