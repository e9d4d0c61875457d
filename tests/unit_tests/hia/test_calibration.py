"""Calibration spends exactly its calls, turns each into an observation, and the saved state
warm-starts a learned heuristic that ranks better than a cold one on prompts it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from hia_chain.bench.cli import split_prompts
from hia_chain.calibration import calibrate, calibration_prompts
from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic
from hia_chain.search import HIASearch, SearchSettings
from hia_chain.search.types import Request, Responder, Response
from tests.unit_tests.fakes import (
    CountingChatModel,
    FatalError,
    WordCountScorer,
    instruction_following,
)

V = Objective("verbosity", description="length", low_label="terse", high_label="long")


def _responder(model: CountingChatModel) -> Responder:
    async def respond(request: Request) -> Response:
        return Response.from_message(
            await model.ainvoke(request.messages(), **request.model_kwargs())
        )

    return respond


def test_shipped_prompts_are_many_and_distinct() -> None:
    prompts = calibration_prompts()
    assert len(prompts) >= 50 and len(set(prompts)) == len(prompts)


def test_calibration_spends_exactly_its_calls_and_learns_each(tmp_path: Path) -> None:
    model = CountingChatModel(answer=instruction_following(0, stretch=2.5))
    heuristic = LearnedHeuristic(fallback=InstructionHeuristic([V]), objectives=[V])
    seen: list[int] = []
    report = anyio.run(
        lambda: calibrate(
            heuristic,
            _responder(model),
            [V],
            [WordCountScorer()],
            calls=10,
            calls_per_prompt=4,
            progress=lambda done, total: seen.append(done),
        )
    )
    assert model.calls == report.calls == 10 == heuristic.n_observations
    assert report.requests == 3 and seen[-1] == 10  # 4 + 4 + 2
    heuristic.save(tmp_path / "s.json", model="fake")
    assert json.loads((tmp_path / "s.json").read_text())["meta"] == {"model": "fake"}
    assert LearnedHeuristic.load(tmp_path / "s.json").n_observations == 10


def test_warm_start_picks_better_on_unseen_prompts(tmp_path: Path) -> None:
    """A model that writes 2.5× longer than asked: the cold filter trusts the instruction's
    nominal level; the calibrated one has learned the overshoot and sends a shorter ask."""
    model = CountingChatModel(answer=instruction_following(1, stretch=2.5))
    warm = LearnedHeuristic(fallback=InstructionHeuristic([V]), objectives=[V])
    anyio.run(lambda: calibrate(warm, _responder(model), [V], [WordCountScorer()], calls=48))
    warm.save(tmp_path / "s.json")
    test = ["What causes inflation?", "How do bees make honey?", "How do plants grow?"]

    async def reward(heuristic: LearnedHeuristic) -> float:
        search = HIASearch([V], [WordCountScorer()], TemplateOptimizer(), heuristic)
        total = 0.0
        for i, prompt in enumerate(test * 3):
            settings = SearchSettings(budget=1, seed=i)
            result = await search.run(prompt, {"verbosity": 1.0}, _responder(model), settings)
            total += result.best.reward or 0.0
        return total / (3 * len(test))

    cold = LearnedHeuristic(fallback=InstructionHeuristic([V]), objectives=[V])
    loaded = LearnedHeuristic.load(
        tmp_path / "s.json", fallback=InstructionHeuristic([V]), objectives=[V]
    )
    assert anyio.run(reward, loaded) > anyio.run(reward, cold) + 0.05


def test_bad_settings_and_files_are_refused(tmp_path: Path) -> None:
    model = CountingChatModel()
    h = LearnedHeuristic()
    with pytest.raises(ConfigError, match="calls"):
        anyio.run(lambda: calibrate(h, _responder(model), [V], [WordCountScorer()], calls=0))
    with pytest.raises(ConfigError, match="Cannot read"):
        LearnedHeuristic.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not JSON"):
        LearnedHeuristic.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ConfigError, match="calibrate"):
        LearnedHeuristic.load(tmp_path / "list.json")


def test_a_model_that_always_fails_stops_calibration_at_once() -> None:
    model = CountingChatModel(fail_on={i: FatalError("no key") for i in range(100)})
    with pytest.raises(FatalError):
        anyio.run(
            lambda: calibrate(
                LearnedHeuristic(), _responder(model), [V], [WordCountScorer()], calls=8
            )
        )
    assert model.calls == 4  # the first request's calls, then it stops


def test_dev_and_test_splits_are_disjoint_halves_in_file_order() -> None:
    pool = [(str(i), f"p{i}") for i in range(7)]
    dev, test = split_prompts(pool, "dev"), split_prompts(pool, "test")
    assert dev == pool[:3] and test == pool[3:] and split_prompts(pool, "all") == pool


def test_a_failure_that_spends_nothing_stops_calibration_after_it_learned() -> None:
    """Once something was learned, a failure that sends nothing (here a blank prompt; in
    practice a refused connection) stops calibration rather than being retried forever."""
    model = CountingChatModel(answer=instruction_following(0))
    heuristic = LearnedHeuristic()
    with pytest.raises(ConfigError, match="empty"):
        anyio.run(
            lambda: calibrate(
                heuristic,
                _responder(model),
                [V],
                [WordCountScorer()],
                calls=40,
                prompts=["Why is the sky blue?", "   "],
            )
        )
    assert heuristic.n_observations == model.calls == 4
