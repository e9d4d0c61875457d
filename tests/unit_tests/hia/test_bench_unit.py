"""The benchmark harness end to end against a fake response model (no server)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import anyio
import pytest

pytest.importorskip("scipy", reason="the benchmark needs the [bench] extra")
pytest.importorskip("matplotlib", reason="the benchmark needs the [bench] extra")

from hia_chain.bench.data import load_prompts
from hia_chain.bench.harness import BenchConfig, make_items, run_experiment
from hia_chain.bench.methods import METHODS
from hia_chain.bench.overhead import measure_overhead, measure_throughput
from hia_chain.bench.report import mean_ci, ratio_ci, spearman, summarize, write_plot
from hia_chain.errors import ConfigError
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers
from tests.unit_tests.fakes import CountingChatModel, FatalError, instruction_following


def test_statistics() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2 and ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t, 2 dof
    point, low, high = ratio_ci([1.0, 2.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0])
    assert point == pytest.approx(0.5) and 0 <= low < point < high <= 1
    assert math.isnan(ratio_ci([1.0], [0.0])[0])


def test_prompt_loading(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"instruction": "a"}\n\n{"prompt": "b"}\n')
    assert [p for _, p in load_prompts(f)] == ["a", "b"]
    f.write_text('{"text": "a"}\n')
    with pytest.raises(ConfigError, match="instruction"):
        load_prompts(f)
    with pytest.raises(ConfigError, match="no such file"):
        load_prompts(tmp_path / "missing.jsonl")


def test_harness_writes_resumes_and_records_failures(tmp_path: Path) -> None:
    objectives = list(BUILTIN_OBJECTIVES.values())
    items = make_items(
        [("1", "Explain how vaccines work."), ("2", "Why is the sky blue?")], objectives, seed=0
    )
    assert [len(i.goal) for i in items] == [1, 2]
    methods = tuple(m for m in METHODS if m.heuristic in (None, "instruction"))
    config = BenchConfig(budgets=(1, 2), methods=methods, candidates_per_round=4, oracle_samples=2)
    model = CountingChatModel(answer=instruction_following(0))
    scorers = builtin_scorers([o.name for o in objectives])

    def run() -> None:
        anyio.run(
            run_experiment,
            items,
            objectives,
            scorers,
            model,
            lambda k: InstructionHeuristic(objectives),
            config,
            tmp_path,
        )

    run()
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    runs = {(r["item"], r["method"], r["budget"]) for r in rows}
    assert len(runs) == len(items) * len(methods) * 2
    assert all(not r["error"] for r in rows)
    assert len(rows) == 3 * len(runs)  # one row per reward function
    assert all(int(r["calls"]) == int(r["budget"]) for r in rows)
    oracle = list(csv.DictReader((tmp_path / "oracle.csv").open()))
    # every first-round candidate (4), sampled twice, under each of the 3 reward functions
    assert len(oracle) == len(items) * 4 * 2 * 3
    bon1 = {
        r["item"]: r["chosen"]
        for r in rows
        if r["method"] == "bon-unfiltered" and r["budget"] == "1"
    }
    assert all(
        bon1[r["item"]] in {o["candidate"] for o in oracle if o["item"] == r["item"]} for r in rows
    )
    calls_before = model.calls
    run()  # resume: nothing left to do
    assert model.calls == calls_before
    text = summarize(tmp_path)
    assert "hia-bon[instruction]" in text and "expected-reward oracle" in text
    assert "captured gain" in text and "## Targets" in text
    assert write_plot(tmp_path).stat().st_size > 0

    broken = CountingChatModel(fail_on={i: FatalError("boom") for i in range(1000)})
    out = tmp_path / "broken"
    anyio.run(
        run_experiment,
        items[:1],
        objectives,
        scorers,
        broken,
        lambda k: InstructionHeuristic(objectives),
        config,
        out,
    )
    errors = [r for r in csv.DictReader((out / "results.csv").open()) if r["error"]]
    assert errors and all(r["error"].startswith("FatalError") for r in errors)


def test_crossval_oracle_sees_through_the_winners_curse() -> None:
    """Two candidates alike in truth, noisy per sample: the best mean looks better than both
    (luck), the oracle picked on other samples does not."""
    from hia_chain.bench.report import _crossval_oracle

    cands = {"a": {0: -0.1, 1: -0.5, 2: -0.3}, "b": {0: -0.5, 1: -0.1, 2: -0.3}}
    best_mean = max(sum(v.values()) / 3 for v in cands.values())
    assert best_mean == pytest.approx(-0.3)
    # hold out pass 0: pick a? means over 1,2: a=-0.4, b=-0.2 → b, scores -0.5 on pass 0
    assert _crossval_oracle(cands) == pytest.approx((-0.5 - 0.5 - 0.3) / 3)
    assert math.isnan(_crossval_oracle({"a": {0: -0.1}}))


async def test_overhead_is_measured_against_the_ideal_wall_time() -> None:
    objectives = list(BUILTIN_OBJECTIVES.values())
    rows = await measure_overhead(
        {"instruction": lambda: InstructionHeuristic(objectives)},
        latency=0.02,
        searches=(("bon", 2), ("greedy", 2)),
        repeats=1,
    )
    assert [(r.search, r.budget) for r in rows] == [("bon", 2), ("greedy", 2)]
    assert [r.ideal_seconds for r in rows] == pytest.approx([0.02, 0.04])  # rounds x latency
    assert all(r.ratio >= 1 for r in rows)  # never faster than the calls themselves
    rps, ideal = await measure_throughput(
        lambda: InstructionHeuristic(objectives), requests=8, concurrency=4, latency=0.02
    )
    assert 0 < rps <= ideal
