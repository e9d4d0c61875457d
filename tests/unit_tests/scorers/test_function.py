"""Callables and Runnables as scorers and heuristics: sync, async, Runnable; bad outputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from langchain_core.runnables import RunnableLambda

from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers.base import Prediction
from hia_chain.scorers.function import FunctionHeuristic, FunctionScorer


def length_sync(prompt: str, response: str) -> dict[str, float]:
    return {"length": float(len(response)), "extra": 1.0}


async def length_async(prompt: str, response: str) -> dict[str, float]:
    await anyio.sleep(0)
    return {"length": float(len(response))}


length_runnable = RunnableLambda(
    lambda d: {"length": float(len(d["response"])) + 0 * len(d["prompt"])}
)


@pytest.mark.parametrize("fn", [length_sync, length_async, length_runnable])
async def test_function_scorer_kinds(fn: Any) -> None:
    scorer = FunctionScorer(fn, ["length"])
    assert await scorer.ascore("p", ["ab", "", "abcd"]) == [
        {"length": 2.0},
        {"length": 0.0},
        {"length": 4.0},
    ]
    assert scorer.objectives == ("length",)


async def test_function_scorer_gets_the_prompt() -> None:
    seen: list[str] = []

    def fn(prompt: str, response: str) -> dict[str, float]:
        seen.append(prompt)
        return {"x": 1.0}

    await FunctionScorer(fn, [Objective("x")]).ascore("the prompt", ["a", "b"])
    assert seen == ["the prompt", "the prompt"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"other": 1.0}, "no score for objective 'length'"),
        ({"length": math.nan}, "'length'"),
        ({"length": "3"}, "'length'"),
        ({"length": True}, "'length'"),
        ([1.0], "expected a mapping"),
        (None, "expected a mapping"),
    ],
)
async def test_function_scorer_bad_outputs(value: Any, match: str) -> None:
    def bad(prompt: str, response: str) -> Any:
        return value

    with pytest.raises(RewardModelError, match=match) as info:
        await FunctionScorer(bad, ["length"], name="my_metric").ascore("p", ["r"])
    assert "my_metric" in str(info.value)


async def test_function_scorer_default_name_is_the_callable() -> None:
    with pytest.raises(RewardModelError, match="length_async"):
        await FunctionScorer(length_async, ["missing"]).ascore("p", ["r"])


async def test_function_scorer_errors_propagate_unchanged() -> None:
    async def boom(prompt: str, response: str) -> Mapping[str, float]:
        raise KeyError("upstream")

    with pytest.raises(KeyError, match="upstream"):
        await FunctionScorer(boom, ["x"]).ascore("p", ["a", "b"])


async def test_function_scorer_concurrency_is_bounded() -> None:
    state = {"now": 0, "max": 0}

    async def slow(prompt: str, response: str) -> dict[str, float]:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await anyio.sleep(0.01)
        state["now"] -= 1
        return {"x": 0.0}

    await FunctionScorer(slow, ["x"], max_concurrency=2).ascore("p", ["r"] * 8)
    assert state["max"] == 2


def test_function_scorer_config_errors() -> None:
    with pytest.raises(ConfigError, match="objectives"):
        FunctionScorer(length_sync, [])
    with pytest.raises(ConfigError, match="duplicate"):
        FunctionScorer(length_sync, ["a", "a"])
    with pytest.raises(ConfigError, match="callable"):
        FunctionScorer(42, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_concurrency"):
        FunctionScorer(length_sync, ["a"], max_concurrency=0)


def words_added(original: str, candidate: str) -> dict[str, float]:
    return {"verbosity": float(len(candidate.split()) - len(original.split())), "other": 0.0}


async def words_added_async(original: str, candidate: str) -> dict[str, float]:
    return words_added(original, candidate)


@pytest.mark.parametrize(
    "fn",
    [
        words_added,
        words_added_async,
        RunnableLambda(lambda d: words_added(d["original"], d["candidate"])),
    ],
)
async def test_function_heuristic_kinds(fn: Any) -> None:
    preds = await FunctionHeuristic(fn, name="diff").apredict(
        "Q?", ["Q?", "Q? Be brief."], ["verbosity"]
    )
    assert preds == [Prediction({"verbosity": 0.0}), Prediction({"verbosity": 2.0})]


async def test_function_heuristic_keeps_prediction_uncertainty() -> None:
    def fn(original: str, candidate: str) -> Prediction:
        return Prediction({"v": 1.0, "w": 2.0}, {"v": 0.5, "w": 0.1})

    (pred,) = await FunctionHeuristic(fn).apredict("o", ["c"], ["v"])
    assert pred == Prediction({"v": 1.0}, {"v": 0.5})


@pytest.mark.parametrize(
    ("value", "match"),
    [({"x": 1.0}, "'verbosity'"), ({"verbosity": math.inf}, "'verbosity'"), (3.0, "mapping")],
)
async def test_function_heuristic_bad_outputs(value: Any, match: str) -> None:
    with pytest.raises(RewardModelError, match=match) as info:
        await FunctionHeuristic(lambda o, c: value, name="guess").apredict(
            "o", ["c"], ["verbosity"]
        )
    assert "guess" in str(info.value)


def test_function_heuristic_forwards_observations() -> None:
    seen: list[tuple[str, str, Mapping[str, float]]] = []
    h = FunctionHeuristic(words_added, observe=lambda o, c, m: seen.append((o, c, m)))
    h.observe("o", "c", {"verbosity": 2.0})
    assert seen == [("o", "c", {"verbosity": 2.0})]
    FunctionHeuristic(words_added).observe("o", "c", {"verbosity": 1.0})  # no-op without a hook
