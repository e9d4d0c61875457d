"""Learned heuristic: it starts as its fallback with high uncertainty, measurably learns the
response model's reaction to instructions, persists as JSON and takes concurrent updates."""

from __future__ import annotations

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.instructions import added_text
from hia_chain.scorers.base import Prediction
from hia_chain.scorers.function import FunctionHeuristic
from hia_chain.scorers.learned import (
    Featurizer,
    HashingFeaturizer,
    InMemoryObservationStore,
    LearnedHeuristic,
    Observation,
)

# Measured verbosity is a deterministic function of the instruction the candidate adds.
INSTRUCTIONS = {
    "Answer in one short sentence.": 0.3,
    "Reply in ten words or fewer.": 0.2,
    "Be brief.": 1.0,
    "Keep it to a few sentences.": 1.3,
    "": 2.3,
    "Answer in one paragraph.": 2.0,
    "Explain in detail.": 3.0,
    "Give a detailed answer with examples.": 3.3,
    "Write a long, thorough essay covering every aspect.": 3.9,
}
TRAIN_TASKS = [
    "Explain how vaccines work.",
    "What is a black hole?",
    "How do I bake bread?",
    "Why is the sky blue?",
    "Describe the French revolution.",
    "How does a CPU cache work?",
]
TEST_TASKS = [
    "What causes inflation?",
    "How do bees make honey?",
    "Tell me about the Roman empire.",
    "How do plants grow?",
]


def candidate(task: str, instruction: str) -> str:
    return f"{task} {instruction}".strip()


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation with average ranks for ties; 0 when either side is constant."""

    def ranks(x: list[float]) -> np.ndarray:
        arr = np.asarray(x)
        order = arr.argsort(kind="stable")
        r = np.empty(len(arr))
        r[order] = np.arange(len(arr))
        for value in np.unique(arr):
            r[arr == value] = r[arr == value].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


async def held_out_correlation(h: LearnedHeuristic) -> tuple[float, list[Prediction]]:
    preds: list[Prediction] = []
    truth: list[float] = []
    for task in TEST_TASKS:
        cands = [candidate(task, i) for i in INSTRUCTIONS]
        preds += await h.apredict(task, cands, ["verbosity"])
        truth += list(INSTRUCTIONS.values())
    return spearman([p.scores["verbosity"] for p in preds], truth), preds


def train(h: LearnedHeuristic, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        task, instruction = rng.choice(TRAIN_TASKS), rng.choice(list(INSTRUCTIONS))
        h.observe(task, candidate(task, instruction), {"verbosity": INSTRUCTIONS[instruction]})


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_learning_improves_held_out_rank_correlation(seed: int) -> None:
    h = LearnedHeuristic()
    before, preds = await held_out_correlation(h)
    assert before == 0.0  # no data, no fallback: every prediction is the midpoint
    assert {p.scores["verbosity"] for p in preds} == {2.0}
    train(h, 20, seed)
    after, _ = await held_out_correlation(h)
    assert after > 0.6


async def test_uncertainty_is_high_before_data_and_shrinks_for_seen_instructions() -> None:
    h = LearnedHeuristic()
    task = TEST_TASKS[0]
    brief = candidate(task, "Be brief.")
    (before,) = await h.apredict(task, [brief], ["verbosity"])
    assert before.uncertainty["verbosity"] > 1.0  # on a 0–4 scale
    for t in TRAIN_TASKS:
        h.observe(t, candidate(t, "Be brief."), {"verbosity": 1.0})
    (after,) = await h.apredict(task, [brief], ["verbosity"])
    assert after.uncertainty["verbosity"] < 0.6 * before.uncertainty["verbosity"]
    assert after.scores["verbosity"] == pytest.approx(1.0, abs=0.35)


async def test_without_data_it_is_its_fallback() -> None:
    fallback = FunctionHeuristic(lambda o, c: {"verbosity": 0.5 if "brief" in c else 3.5})
    h = LearnedHeuristic(fallback=fallback)
    preds = await h.apredict("Q?", ["Q? Be brief.", "Q? Explain."], ["verbosity"])
    assert [p.scores["verbosity"] for p in preds] == [0.5, 3.5]
    assert all(p.uncertainty["verbosity"] > 1.0 for p in preds)


async def test_learns_the_fallbacks_systematic_error() -> None:
    # The fallback thinks "Be brief." gives 0.5; this model actually writes 2.5 for it.
    fallback = FunctionHeuristic(lambda o, c: {"verbosity": 0.5 if "brief" in c else 2.0})
    h = LearnedHeuristic(fallback=fallback)
    for t in TRAIN_TASKS:
        c = candidate(t, "Be brief.")
        await h.apredict(t, [c], ["verbosity"])  # stage 1 predicted it, so its prior is known
        h.observe(t, c, {"verbosity": 2.5})
    assert all(o.prior == {"verbosity": 0.5} for o in h.store.snapshot()[1])
    (pred,) = await h.apredict(
        TEST_TASKS[0], [candidate(TEST_TASKS[0], "Be brief.")], ["verbosity"]
    )
    assert pred.scores["verbosity"] == pytest.approx(2.5, abs=0.4)


async def test_observations_without_a_remembered_prior_get_one_lazily() -> None:
    calls: list[str] = []

    def fallback_fn(o: str, c: str) -> dict[str, float]:
        calls.append(c)
        return {"verbosity": 1.0}

    h = LearnedHeuristic(fallback=FunctionHeuristic(fallback_fn))
    h.observe("Q?", "Q? Be brief.", {"verbosity": 3.0})  # never predicted before
    assert h.store.snapshot()[1][0].prior == {}
    await h.apredict("R?", ["R? Be brief."], ["verbosity"])
    await h.apredict("R?", ["R? Be brief."], ["verbosity"])
    assert calls.count("Q? Be brief.") == 1  # computed once, then remembered


async def test_predictions_are_clipped_to_the_objective_scale() -> None:
    h = LearnedHeuristic(
        objectives=[Objective("score", low=0, high=1)], prior_std=2.0, noise_std=0.01
    )
    for t in TRAIN_TASKS:
        h.observe(t, candidate(t, "Be brief."), {"score": 1.0})
    (pred,) = await h.apredict("Z?", ["Z? Be brief. Be brief. Be brief."], ["score"])
    assert 0.0 <= pred.scores["score"] <= 1.0


async def test_state_roundtrips_through_json() -> None:
    h = LearnedHeuristic()
    train(h, 15)
    state = json.loads(json.dumps(h.state_dict()))
    restored = LearnedHeuristic()
    restored.load_state_dict(state)
    assert restored.n_observations == 15
    _, a = await held_out_correlation(h)
    _, b = await held_out_correlation(restored)
    assert [x.scores["verbosity"] for x in a] == pytest.approx([y.scores["verbosity"] for y in b])
    assert [x.uncertainty["verbosity"] for x in a] == pytest.approx(
        [y.uncertainty["verbosity"] for y in b]
    )


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"format": "other", "observations": []},
        {"format": "hia_chain.learned/1", "observations": [{"original": "o"}]},
        {
            "format": "hia_chain.learned/1",
            "observations": [{"original": "o", "candidate": "c", "measured": {"v": "x"}}],
        },
        {
            "format": "hia_chain.learned/1",
            "observations": [{"original": "o", "candidate": "c", "measured": {"v": math.nan}}],
        },
    ],
)
def test_bad_state_is_a_config_error(state: dict) -> None:
    with pytest.raises(ConfigError):
        LearnedHeuristic().load_state_dict(state)


@pytest.mark.parametrize("value", [math.nan, math.inf, "3", True])
def test_observe_rejects_non_finite_scores(value: object) -> None:
    h = LearnedHeuristic()
    with pytest.raises(RewardModelError, match="'verbosity'"):
        h.observe("o", "c", {"verbosity": value})  # type: ignore[dict-item]
    assert h.n_observations == 0


def test_concurrent_observations_are_all_kept() -> None:
    h = LearnedHeuristic(max_observations=1000)

    def worker(k: int) -> None:
        for i in range(50):
            h.observe(f"task {k}", f"task {k} variant {i}", {"verbosity": float(i % 5)})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    assert h.n_observations == 200


def test_store_keeps_the_latest_observations() -> None:
    store = InMemoryObservationStore(max_size=3)
    for i in range(5):
        store.append(Observation("o", f"c{i}", {"v": float(i)}))
    version, items = store.snapshot()
    assert version == 5 and [o.candidate for o in items] == ["c2", "c3", "c4"]
    with pytest.raises(ConfigError, match="max_size"):
        InMemoryObservationStore(0)


def test_hashing_featurizer_shape_norm_and_determinism() -> None:
    f = HashingFeaturizer(n_features=64)
    assert isinstance(f, Featurizer)
    x = f(["Explain in detail.", "", "Explain in detail."])
    assert x.shape == (3, 65)
    assert np.linalg.norm(x[0, :-1]) == pytest.approx(1.0)
    assert not x[1].any()
    assert (x[0] == x[2]).all()
    assert (HashingFeaturizer(64)(["Explain in detail."]) == x[:1]).all()  # stable across instances
    with pytest.raises(ConfigError, match="n_features"):
        HashingFeaturizer(4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=4))
def test_hashing_featurizer_is_finite_for_any_text(texts: list[str]) -> None:
    x = HashingFeaturizer(32)(texts)
    assert x.shape == (len(texts), 33) and np.isfinite(x).all()


def test_added_text_is_the_inserted_instruction() -> None:
    assert added_text("What is X?", "What is X? Be brief.") == "Be brief."
    assert added_text("What is X?", "Briefly: What is X?") == "Briefly:"
    assert added_text("What is X?", "What is X?") == ""


async def test_custom_featurizer_and_config_checks() -> None:
    class Length:
        def __call__(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t) / 100.0] for t in texts])

    h = LearnedHeuristic(featurizer=Length())
    h.observe("q", "q long instruction here", {"verbosity": 4.0})
    (pred,) = await h.apredict("r", ["r long instruction here"], ["verbosity"])
    assert pred.scores["verbosity"] > 2.0
    assert await h.apredict("r", [], ["verbosity"]) == []
    with pytest.raises(ConfigError, match="prior_std"):
        LearnedHeuristic(prior_std=0)
    with pytest.raises(ConfigError, match="noise_std"):
        LearnedHeuristic(noise_std=math.nan)
