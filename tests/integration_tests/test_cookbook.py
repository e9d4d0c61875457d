"""Every cookbook script runs end to end, as a user would run it, and says what it promises.

Why: cookbook scripts rot silently (an API rename, a changed default) unless something runs
them. Each runs as a subprocess with one torch thread and no hub access, on the embedded model
(``openai_endpoint.py`` against the session's ``transformers serve``), and must exit 0 and
print its key lines. Outputs of a 135M model are not asserted on, only their shape.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"


def run_script(name: str, *args: str, served: Any = None) -> str:
    """Run ``cookbook/<name>`` and return its stdout; fail with its stderr if it fails."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OPENAI_API_KEY": "not-needed",
    }
    cache = getattr(served, "cache_dir", None) or os.environ.get("HIA_CHAIN_CACHE")
    if cache:
        env["HIA_CHAIN_CACHE"] = str(cache)
    out = subprocess.run(
        [sys.executable, str(COOKBOOK / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=COOKBOOK.parent,
    )
    assert out.returncode == 0, f"{name} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out.stdout


def test_lcel_app() -> None:
    out = run_script("lcel_app.py")
    assert re.search(r"\[hia\] round 0: \d+ prompts proposed, sending candidates \[", out)
    assert re.search(r"\[hia\] done: best candidate \d+, reward -?[\d.]+, 2 call\(s\) spent", out)
    assert re.search(r"^Answer: \S", out, re.M)


def test_budget_capped_agent_caps_each_thread() -> None:
    out = run_script("budget_capped_agent.py")
    assert "[ana] tool calculator: 3 * 24 * 60 = 4320" in out
    assert re.search(r"^\[ana\] answer 1: 2 call\(s\), verbosity [\d.]+: \S", out, re.M)
    # the third answer gets the one call left, the fourth none: flagged, never overspent
    assert re.search(r"^\[ana\] answer 3: 1 call\(s\), budget exhausted \(best so far\)", out, re.M)
    assert "[ana] answer 4: stopped, budget exhausted (0 calls made)" in out
    assert re.search(r"^\[ben\] answer 1: 2 call\(s\)", out, re.M)  # its own cap
    assert re.search(r"Thread ana: spent 5 of 5 calls, \d+ tokens; Thread ben: spent 2 of 5", out)
    largest = re.search(r"Checkpoint of ana: \d+ messages, largest trace (\d+) bytes", out)
    assert largest and int(largest.group(1)) < 2_000  # trace="summary" keeps checkpoints small


def test_personalized_assistant_learns_per_user(tmp_path: Path) -> None:
    out = run_script("personalized_assistant.py", "--db", str(tmp_path / "learned.sqlite"))
    for user in ("ana", "ben"):
        line = re.search(
            rf"^{user}: prediction error before ([\d.]+) -> after ([\d.]+) \((\d+) answers",
            out,
            re.M,
        )
        assert line, out
        assert int(line.group(3)) == 6  # 3 requests x 2 calls, each learned from
    # the goals reached the trace: Ana's answers are scored on her objectives
    assert re.search(r"^ana \| .* \| measured verbosity [\d.]+, sentiment [\d.]+", out, re.M)


def test_openai_endpoint_against_the_served_model(served: Any) -> None:
    out = run_script(
        "openai_endpoint.py", "--base-url", served.base_url, "--model", served.model, served=served
    )
    assert f"Endpoint: {served.base_url}" in out
    assert re.search(r"^Answer: \S", out, re.M)
    assert re.search(r"; 2 of 2 calls$", out, re.M)
    assert re.search(r"^Tokens billed by .+: \d+ in, \d+ out$", out, re.M)


def test_ivg_steering() -> None:
    out = run_script("ivg_steering.py")
    for mode in ("none", "token", "both"):
        assert re.search(rf"^\s*{mode}: sentiment [\d.]+ in [\d.]+ s \| \S", out, re.M), out


def test_aligning_server_answers_each_user_through_the_openai_sdk() -> None:
    out = run_script("aligning_server.py")
    assert re.search(r"^Server: http://127\.0\.0\.1:\d+/v1$", out, re.M)
    for user in ("ana", "ben"):
        assert re.search(
            rf"^{user} \| goal .* \| measured .*verbosity [\d.]+.* \| 2 calls$", out, re.M
        ), out
    assert re.search(r"^streamed: (['\"])(?!\1)\S", out, re.M)  # non-empty; repr quotes vary
