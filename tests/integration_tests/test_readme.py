"""The README's Python examples run as written, on the embedded model.

Why: the README is the API's first user; an example that drifts from the code is a bug a
new user hits first. The blocks run in order in one subprocess (one model load, one thread).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_examples_run(embedded_path: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIA_CHAIN_CACHE": str(embedded_path.parent)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=280
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Plan(response_calls=4" in out.stdout
