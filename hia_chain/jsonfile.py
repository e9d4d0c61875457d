"""Reading the JSON files a user hands over (keys files, learned-heuristic states).

One reader, so every such file fails the same way: a :class:`~hia_chain.errors.ConfigError`
that names the file, what it was meant to be and, where it helps, how to make a good one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hia_chain.errors import ConfigError

__all__ = ["read_json"]


def read_json(path: str | Path, what: str, *, fix: str = "") -> Any:
    """The JSON value stored in ``path``.

    Args:
        path: The file.
        what: What the file is, for messages (e.g. ``"the keys file"``).
        fix: How to get a good file, appended to the not-JSON message.

    Raises:
        ConfigError: the file cannot be read, or is not JSON (with the line of the error).
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        msg = f"Cannot read {what} {path}: {e.strerror}."
        raise ConfigError(msg) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"{what[:1].upper()}{what[1:]} {path} is not JSON ({e.msg}, line {e.lineno})"
        msg += f": {fix}" if fix else "."
        raise ConfigError(msg) from e
