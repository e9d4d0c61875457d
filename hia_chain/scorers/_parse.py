"""Helpers shared by the scorers: reading scores out of model replies, and bounded fan-out.

Judges are chat models and write what they like: JSON in code fences, JSON after a sentence of
prose, ``**Helpfulness**: 3/4`` lines. :func:`parse_scores` accepts all of these and returns
only what it could read; deciding what is missing is the caller's job.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import anyio

__all__ = ["map_bounded", "normalize_key", "parse_scores", "snippet"]

T = TypeVar("T")
R = TypeVar("R")

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:/\s*{_NUMBER})?\s*$")
_DECORATION = "*_`\"'#"
_NESTED_KEYS = ("score", "rating", "value")


def normalize_key(key: str) -> str:
    """Compare attribute names loosely: case, spaces, hyphens and markdown don't matter."""
    return re.sub(r"[\s\-]+", "_", key.strip().strip(_DECORATION).strip().lower())


def snippet(text: str, limit: int = 200) -> str:
    """The start of a reply, on one line, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _as_number(value: Any) -> float | None:
    """A finite number from a JSON value (``3``, ``"3"``, ``"3/4"``, ``{"score": 3}``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        m = _NUMBER_RE.match(value)
        return _as_number(float(m.group(1))) if m else None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if normalize_key(str(k)) in _NESTED_KEYS:
                return _as_number(v)
    return None


def _json_objects(text: str) -> Iterable[Mapping[str, Any]]:
    """Every JSON object embedded anywhere in ``text``, outermost first, then nested ones."""
    decoder = json.JSONDecoder()
    pos = 0
    while (start := text.find("{", pos)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        if isinstance(obj, dict):
            stack: list[Mapping[str, Any]] = [obj]
            while stack:
                current = stack.pop(0)
                yield current
                stack.extend(v for v in current.values() if isinstance(v, dict))
        pos = end


def _from_lines(text: str, name: str) -> float | None:
    """``name: 3``, ``**Name** = 3/4``, ``- name (0-4): 3``: the last such line wins."""
    words = r"[\s_\-]+".join(re.escape(w) for w in re.split(r"[\s_\-]+", name) if w)
    pattern = re.compile(
        rf"(?<![\w]){words}(?:\s+(?:score|rating))?(?![\w])[{re.escape(_DECORATION)}\s]*(?:\([^)\n]*\))?"
        rf"[{re.escape(_DECORATION)}\s]*[:=\-–]\s*[{re.escape(_DECORATION)}\s]*({_NUMBER})",
        re.IGNORECASE,
    )
    found = None
    for m in pattern.finditer(text):
        value = float(m.group(1))
        if math.isfinite(value):
            found = value
    return found


def parse_scores(text: str, names: Sequence[str]) -> dict[str, float]:
    """Read a finite score for each of ``names`` from a model's reply, where one can be found.

    JSON objects anywhere in the text come first (keys matched loosely, values may be numbers,
    numeric strings, ``"3/4"`` or ``{"score": 3}``); names still missing are looked for in
    ``name: number`` lines. NaN, infinities and booleans are never accepted. Values are not
    clamped here.
    """
    wanted = {normalize_key(n): n for n in names}
    found: dict[str, float] = {}
    for obj in _json_objects(text):
        for key, value in obj.items():
            name = wanted.get(normalize_key(str(key)))
            if name is None or name in found:
                continue
            number = _as_number(value)
            if number is not None:
                found[name] = number
    for name in names:
        if name not in found:
            number = _from_lines(text, name)
            if number is not None:
                found[name] = number
    return found


async def map_bounded(
    fn: Callable[[T], Awaitable[R]], items: Sequence[T], max_concurrency: int
) -> list[R]:
    """Run ``fn`` on every item concurrently, at most ``max_concurrency`` at a time, in order.

    The first exception cancels the others and is raised unchanged (not as an exception
    group), so callers catch ``RewardModelError`` and friends as usual.
    """
    limiter = anyio.CapacityLimiter(max_concurrency)
    results: list[R | None] = [None] * len(items)
    errors: list[Exception] = []

    async def run(index: int, item: T) -> None:
        async with limiter:
            try:
                results[index] = await fn(item)
            except Exception as exc:  # re-raised below, after the group has wound down
                errors.append(exc)
                tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for index, item in enumerate(items):
            tg.start_soon(run, index, item)
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
