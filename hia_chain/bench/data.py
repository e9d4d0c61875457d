"""Benchmark prompts: a JSONL file with ``instruction`` or ``prompt`` per line.

Default: the AlpacaEval prompts in ``../shared/data/alpaca_eval.jsonl`` when present (looked
up beside the working directory and the repository), else the small set shipped here.
"""

from __future__ import annotations

import json
from pathlib import Path

from hia_chain.errors import ConfigError

__all__ = ["default_prompts_path", "load_prompts"]

_SHIPPED = Path(__file__).with_name("prompts.jsonl")


def default_prompts_path() -> Path:
    """The AlpacaEval file next to the project if there is one, else the shipped prompts."""
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    for root in roots:
        for parent in [root, *root.parents][:3]:
            candidate = parent / "shared" / "data" / "alpaca_eval.jsonl"
            if candidate.is_file():
                return candidate
    return _SHIPPED


def load_prompts(
    path: Path, limit: int | None = None, max_chars: int = 600
) -> list[tuple[str, str]]:
    """``(id, prompt)`` pairs; prompts longer than ``max_chars`` are left out (the CLI says
    how many): 135M-parameter response models and 2-core benchmarks need short prompts.

    Raises:
        ConfigError: the file is missing, a line is not JSON, or has neither field.
    """
    if not path.is_file():
        msg = f"--prompts {path}: no such file."
        raise ConfigError(msg)
    out: list[tuple[str, str]] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"{path}:{n}: not valid JSON ({exc.msg})."
            raise ConfigError(msg) from exc
        text = row.get("instruction") or row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            msg = f"{path}:{n}: needs a non-empty `instruction` or `prompt` field."
            raise ConfigError(msg)
        if len(text) <= max_chars:
            out.append((str(row.get("id", n)), text.strip()))
        if limit is not None and len(out) >= limit:
            break
    return out
