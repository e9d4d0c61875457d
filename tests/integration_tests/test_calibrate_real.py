"""``hia-chain calibrate`` on the real server, and a warm-started ``align`` that uses its state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hia_chain.scorers.learned import LearnedHeuristic

from .conftest import Served


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hia_chain.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)


def test_calibrate_then_warm_align(served: Served, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    server = ["--base-url", served.base_url, "--model", served.model, "--max-tokens", "24"]
    out = _cli("calibrate", "--calls", "4", "--out", str(state), *server)
    assert out.returncode == 0, out.stderr[-3000:]
    saved = json.loads(state.read_text())
    # every paid call became one observation, measured on a shipped calibration prompt
    assert len(saved["observations"]) == 4 == saved["meta"]["calls"]
    assert saved["meta"]["model"] == served.model
    warm = LearnedHeuristic.load(state)
    assert warm.n_observations == 4

    out = _cli(
        "align",
        "Why is the sky blue?",
        "--goal",
        "verbosity=0",
        "--budget",
        "1",
        "--heuristic-state",
        str(state),
        "--json",
        *server,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["calls"] == 1 and data["answer"].strip()
    # the warm state's observations narrow the learned heuristic's uncertainty
    sent = next(c for c in data["candidates"] if c["sent"])
    assert sent["predicted"] is not None
