"""The alignment-per-call experiment: every method at budgets B on real prompts and goals.

Rows are appended to ``results.csv`` as each run finishes (one per prompt × goal × method ×
budget × reward function), failures included as rows with their error type, and a rerun
skips keys already written, so an interrupted benchmark resumes.

Reward functions: each run searches with the euclidean reward; the ``max_error`` and
``goal_completion`` rows re-select, among the answers that run measured, the best under that
function. Searching separately per function would triple the calls for a small difference
in which prompts get refined.

The ceiling is an *expected-reward* oracle: every first-round candidate is sampled
``oracle_samples`` times (``oracle.csv``: one row per candidate and pass). The best single
sample of eight is partly luck; the candidate with the best mean reward is what a perfect
predictor could pick, and the mean over candidates is what a random pick gets on average.
Each run's ``chosen`` candidate lets the report look up the expected reward of a filter's
pick. Candidates are keyed by :attr:`~hia_chain.search.types.Candidate.text`, so a capped or
system-placed variant is never merged with its twin.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from hia_chain.bench.methods import METHODS, Method
from hia_chain.bench.responses import SharedResponses
from hia_chain.goals import REWARD_NAMES, Objective, get_reward_function
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.scorers.base import Heuristic, ReferenceScorer
from hia_chain.search import HIASearch, SearchSettings
from hia_chain.search.types import SearchResult

__all__ = ["BenchConfig", "Item", "make_items", "run_experiment"]

RESULT_FIELDS = [
    "item",
    "prompt_id",
    "objectives",
    "goal",
    "method",
    "heuristic",
    "budget",
    "reward_function",
    "reward",
    "scores",
    "calls",
    "tokens",
    "seconds",
    "error",
    "chosen",
]
ORACLE_FIELDS = ["item", "pass", "reward_function", "candidate", "reward", "scores"]
PRED_FIELDS = [
    "item",
    "method",
    "heuristic",
    "budget",
    "objective",
    "predicted",
    "measured",
    "candidate",
]


@dataclass(frozen=True)
class BenchConfig:
    budgets: tuple[int, ...] = (1, 2, 4, 8)
    candidates_per_round: int = 8
    seed: int = 0
    methods: tuple[Method, ...] = METHODS
    concurrency: int = 4
    oracle_samples: int = 3
    """Samples of every first-round candidate for the expected-reward oracle."""


@dataclass(frozen=True)
class Item:
    """One prompt with one goal vector."""

    key: str
    prompt_id: str
    prompt: str
    goal: dict[str, float]


def make_items(
    prompts: Sequence[tuple[str, str]], objectives: Sequence[Objective], seed: int
) -> list[Item]:
    """1, 2 and 3 objectives in turn, targets drawn from the integer grid with the seed."""
    rng = random.Random(seed)
    items = []
    for i, (pid, prompt) in enumerate(prompts):
        k = i % len(objectives) + 1
        chosen = rng.sample(list(objectives), k)
        goal = {o.name: float(rng.choice(range(int(o.low), int(o.high) + 1))) for o in chosen}
        key = f"{pid}|" + ",".join(f"{n}={v:g}" for n, v in sorted(goal.items()))
        items.append(Item(key, pid, prompt, goal))
    return items


@dataclass
class _Writer:
    out: Path
    done: set[tuple[str, str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = self.out / "results.csv"
        self.preds = self.out / "predictions.csv"
        self.oracle = self.out / "oracle.csv"
        for path, fields in (
            (self.results, RESULT_FIELDS),
            (self.preds, PRED_FIELDS),
            (self.oracle, ORACLE_FIELDS),
        ):
            if not path.exists():
                with path.open("w", newline="") as f:
                    csv.writer(f).writerow(fields)
        with self.results.open() as f:
            for row in csv.DictReader(f):
                self.done.add((row["item"], row["method"], int(row["budget"])))
        with self.oracle.open() as f:
            for row in csv.DictReader(f):
                self.done.add((row["item"], "oracle", int(row["pass"])))

    def write(self, path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writerows(rows)


@dataclass
class _Run:
    objectives: Sequence[Objective]
    scorers: Sequence[ReferenceScorer]
    make_heuristic: Callable[[str], Heuristic]
    config: BenchConfig
    writer: _Writer
    optimizer: TemplateOptimizer = field(default_factory=TemplateOptimizer)
    heuristics: dict[tuple[str, int], Heuristic] = field(default_factory=dict)

    async def one(self, item: Item, method: Method, budget: int, shared: SharedResponses) -> None:
        """One method at one budget on one item; learned heuristics persist across items."""
        if (item.key, method.name, budget) in self.writer.done:
            return
        heuristic = None
        if method.heuristic:
            key = (method.name, budget)
            if key not in self.heuristics:
                self.heuristics[key] = self.make_heuristic(method.heuristic)
            heuristic = self.heuristics[key]
        search = HIASearch(self.objectives, self.scorers, self.optimizer, heuristic)
        settings = SearchSettings(
            search=method.search,
            filter=method.filter,
            budget=budget,
            candidates_per_round=max(self.config.candidates_per_round, budget),
            seed=self.config.seed,
        )
        t0 = time.perf_counter()
        try:
            result = await search.run(item.prompt, item.goal, shared.responder(), settings)
        except Exception as exc:  # recorded as a row, never dropped
            self.writer.write(
                self.writer.results, [_error_row(item, method, budget, exc, t0)], RESULT_FIELDS
            )
            return
        rows = _rows(item, method, budget, result, self.objectives, time.perf_counter() - t0)
        self.writer.write(self.writer.results, rows, RESULT_FIELDS)
        if method.heuristic:
            self.writer.write(
                self.writer.preds, _pred_rows(item, method, budget, result), PRED_FIELDS
            )


async def run_experiment(
    items: Sequence[Item],
    objectives: Sequence[Objective],
    scorers: Sequence[ReferenceScorer],
    responder_llm: Any,
    make_heuristic: Callable[[str], Heuristic],
    config: BenchConfig,
    out: Path,
    progress: Callable[[str], None] = lambda s: None,
) -> None:
    """Run every method × budget on every item, plus the oracle, appending rows as it goes."""
    run = _Run(objectives, scorers, make_heuristic, config, _Writer(out))
    limiter = anyio.CapacityLimiter(config.concurrency)

    async def limited(item: Item, method: Method, budget: int, shared: SharedResponses) -> None:
        async with limiter:
            await run.one(item, method, budget, shared)

    for n, item in enumerate(items, 1):
        shared = SharedResponses(responder_llm, seed=config.seed)
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for method in config.methods:
                for budget in config.budgets:
                    tg.start_soon(limited, item, method, budget, shared)
        for r in range(config.oracle_samples):
            if (item.key, "oracle", r) not in run.writer.done:
                await _oracle_pass(
                    item, r, objectives, scorers, run.optimizer, shared, config, run.writer
                )
        progress(
            f"[{n}/{len(items)}] {item.key}: {shared.generated} answers generated "
            f"in {time.perf_counter() - started:.0f} s"
        )


async def _oracle_pass(
    item: Item,
    r: int,
    objectives: Sequence[Objective],
    scorers: Sequence[ReferenceScorer],
    optimizer: TemplateOptimizer,
    shared: SharedResponses,
    config: BenchConfig,
    writer: _Writer,
) -> None:
    """The r-th sample of every first-round candidate (the same prompts a bon filter sees)."""
    n = config.candidates_per_round
    search = HIASearch(objectives, scorers, optimizer, None)
    settings = SearchSettings(
        search="bon", filter="order", budget=n, candidates_per_round=n, seed=config.seed
    )
    try:
        result = await search.run(item.prompt, item.goal, shared.responder(offset=r), settings)
    except Exception as exc:
        writer.write(writer.results, [_error_row(item, _ORACLE, r, exc, 0.0)], RESULT_FIELDS)
        return
    rows = []
    for name in REWARD_NAMES:
        fn = get_reward_function(name, objectives)
        rows += [
            {
                "item": item.key,
                "pass": r,
                "reward_function": name,
                "candidate": c.text,
                "reward": fn(item.goal, c.measured),
                "scores": json.dumps(c.measured),
            }
            for c in result.candidates
            if c.measured is not None
        ]
    writer.write(writer.oracle, rows, ORACLE_FIELDS)


_ORACLE = Method("oracle", "bon", "order")


def _run_row(item: Item, method: Method, budget: int, **fields: Any) -> dict[str, Any]:
    """One ``results.csv`` row: the run's key columns, then ``fields`` (the rest blank)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_FIELDS, "")
    row.update(
        item=item.key,
        prompt_id=item.prompt_id,
        objectives=len(item.goal),
        goal=json.dumps(item.goal),
        method=method.name,
        heuristic=method.heuristic or "",
        budget=budget,
    )
    row.update(fields)
    return row


def _rows(
    item: Item,
    method: Method,
    budget: int,
    result: SearchResult,
    objectives: Sequence[Objective],
    seconds: float,
) -> list[dict[str, Any]]:
    measured = [c for c in result.candidates if c.measured is not None]
    usage = result.usage["response"]
    rows = []
    for name in REWARD_NAMES:
        fn = get_reward_function(name, objectives)
        best = max(measured, key=lambda c: fn.rank_key(item.goal, c.measured or {}))
        rows.append(
            _run_row(
                item,
                method,
                budget,
                reward_function=name,
                reward=fn(item.goal, best.measured or {}),
                scores=json.dumps(best.measured),
                calls=result.calls,
                tokens=usage["total_tokens"],
                seconds=round(seconds, 3),
                chosen=best.text,
            )
        )
    return rows


def _error_row(
    item: Item, method: Method, budget: int, exc: BaseException, t0: float
) -> dict[str, Any]:
    seconds = round(time.perf_counter() - t0, 3) if t0 else ""
    error = f"{type(exc).__name__}: {exc}"[:300]
    return _run_row(item, method, budget, seconds=seconds, error=error)


def _pred_rows(
    item: Item, method: Method, budget: int, result: SearchResult
) -> list[dict[str, Any]]:
    rows = []
    for c in result.candidates:
        if c.predicted is None or c.measured is None:
            continue
        for name, value in c.measured.items():
            rows.append(
                {
                    "item": item.key,
                    "method": method.name,
                    "heuristic": method.heuristic,
                    "budget": budget,
                    "objective": name,
                    "predicted": c.predicted.get(name),
                    "measured": value,
                    "candidate": c.text,
                }
            )
    return rows
