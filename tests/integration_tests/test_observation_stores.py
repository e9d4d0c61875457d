"""Learned state outside the process: SQLite across restarts and writers, Redis across workers.

Why real processes: "another process learned it" and "it survived a restart" are about
processes, so the writers here are separate Python processes and the reader a fresh one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import anyio
import pytest

from hia_chain import RedisObservationStore, SQLiteObservationStore, StoreUnavailableError
from hia_chain.bench.redis_server import LocalRedis
from hia_chain.scorers.learned import LearnedHeuristic, Observation
from hia_chain.stores import observation_key

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["Describe the sea.", "Explain rain.", "Tell me about trees.", "What is a comet?"]

# A writer process: learns that "Be brief." gives verbosity 0.5 (or "Go into detail." 3.5).
_LEARN = f"""
import sys
from hia_chain import RedisObservationStore, SQLiteObservationStore
from hia_chain.scorers.learned import LearnedHeuristic
kind, where, key, instruction, value, n = sys.argv[1:7]
store = (RedisObservationStore(where, key) if kind == "redis" else SQLiteObservationStore(where, key))
h = LearnedHeuristic(store=store)
tasks = {TASKS!r}
for i in range(int(n)):
    t = tasks[i % len(tasks)] + f" ({{i}})"
    h.observe(t, t + " " + instruction, {{"verbosity": float(value)}})
print(h.n_observations)
"""


def _learners(kind: str, where: str, key: str, jobs: list[tuple[str, str, int]]) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LEARN, kind, where, key, instruction, value, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for instruction, value, n in jobs
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    return [int(out.split()[-1]) for out, _ in outs]


def _predict(h: LearnedHeuristic, instruction: str) -> float:
    task = "Describe a mountain."
    (pred,) = anyio.run(h.apredict, task, [f"{task} {instruction}"], ["verbosity"])
    return pred.scores["verbosity"]


def test_two_processes_learn_into_redis_and_a_third_predicts(redis_server: LocalRedis) -> None:
    key = observation_key(f"user-{uuid.uuid4().hex[:6]}", "model/a:1")
    _learners(
        "redis", redis_server.url, key, [("Be brief.", "0.5", 40), ("Go into detail.", "3.5", 40)]
    )
    store = RedisObservationStore(redis_server.url, key, max_size=256)
    version, observations = store.snapshot()
    assert len(observations) == 80 and version == 80  # every write of both processes
    h = LearnedHeuristic(store=store)
    brief, detail = _predict(h, "Be brief."), _predict(h, "Go into detail.")
    assert brief < 1.2 and detail > 2.8  # learned from both writers (the prior is 2.0)
    other = LearnedHeuristic(
        store=RedisObservationStore(redis_server.url, observation_key("x", "m"))
    )
    assert other.n_observations == 0  # per user and per model
    store.append(Observation("a", "a b", {"verbosity": 1.0}))
    assert store.snapshot()[0] == 81  # the version moves on, so readers re-read
    small = RedisObservationStore(redis_server.url, key, max_size=10)
    small.append(Observation("a", "a c", {"verbosity": 1.0}))
    assert len(small.snapshot()[1]) == 10  # bounded: the latest only
    for s in (store, small):
        s.clear()
        s.close()


def test_sqlite_store_survives_restart_and_concurrent_writers(tmp_path: Path) -> None:
    db = tmp_path / "learned.sqlite"
    key = observation_key("ana", "gpt-x")
    counts = _learners(
        "sqlite",
        str(db),
        key,
        [("Be brief.", "0.5", 60), ("Go into detail.", "3.5", 60), ("Be brief.", "0.5", 60)],
    )
    assert all(c >= 60 for c in counts)
    store = SQLiteObservationStore(db, key)  # a fresh process-side reader: the "restart"
    version, observations = store.snapshot()
    assert (version, len(observations)) == (180, 180)  # no write lost to a concurrent writer
    h = LearnedHeuristic(store=store)
    assert _predict(h, "Be brief.") < 1.2 and _predict(h, "Go into detail.") > 2.8
    bounded = SQLiteObservationStore(db, key, max_size=50)
    bounded.append(Observation("a", "a b", {"verbosity": 1.0}))
    assert len(bounded.snapshot()[1]) == 50
    assert SQLiteObservationStore(db, observation_key("ben", "gpt-x")).snapshot() == (0, [])
    for s in (store, bounded):
        s.close()


def test_unreachable_stores_raise_typed_errors(tmp_path: Path) -> None:
    store = RedisObservationStore("redis://127.0.0.1:1/0", "k", timeout=0.5)
    with pytest.raises(StoreUnavailableError, match=r"Redis at redis://127\.0\.0\.1:1/0"):
        store.snapshot()
    (tmp_path / "not-a-db").write_text("hello, I am not SQLite" * 100)
    with pytest.raises(StoreUnavailableError, match="not-a-db"):
        SQLiteObservationStore(tmp_path / "not-a-db", "k").snapshot()
