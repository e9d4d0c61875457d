"""``hia-chain bench`` end to end against the session's real server, sized to one item.

Why: the benchmark is how the package's claims are checked; this keeps the whole path (prompt
loading, the sampling check, every method and the oracle over HTTP, the CSVs, the summary and
the plot) working. The figures of a 1-item run mean nothing and are not asserted on.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_bench_one_item_writes_results_summary_and_plot(served: Any, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"instruction": "Name a fruit."}\n{"instruction": "Name a colour."}\n')
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENAI_API_KEY": "not-needed"}
    cmd = [
        sys.executable,
        "-m",
        "hia_chain.cli",
        "bench",
        "--quick",
        "--prompts",
        str(prompts),
        "--limit",
        "1",
        "--budgets",
        "1",
        "--skip-overhead",
        "--oracle-samples",
        "2",
        "--base-url",
        served.base_url,
        "--model",
        served.model,
        "--out",
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").open()))
    methods = {r["method"] for r in rows}
    assert {"best-of-n", "hia-bon[learned]", "hia-bon[draft]"} <= methods
    assert all(not r["error"] for r in rows)
    oracle = list(csv.DictReader((out / "oracle.csv").open()))
    assert {r["pass"] for r in oracle} == {"0", "1"}  # every first-round candidate, twice
    summary = (out / "summary.md").read_text()
    assert "## reward = euclidean" in summary and "expected-reward oracle" in summary
    assert (out / "reward_vs_budget.png").stat().st_size > 1000
