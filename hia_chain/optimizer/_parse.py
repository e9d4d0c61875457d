"""Turn an optimizer model's free text into a list of prompts, however it was formatted.

Models answer with JSON arrays, JSON objects, numbered or bulleted lists, quoted lines, or
paragraphs wrapped in prose ("Sure! Here are ..."). Each form is tried in turn.
"""

from __future__ import annotations

import json
import re

__all__ = ["parse_prompts"]

_ITEM = re.compile(
    r"^\s*(?:\d+[.)]|[-*•]|\(\d+\)|(?:prompt|rewrite|option)\s*\d*\s*[:.)-])\s*", re.I
)
_PREAMBLE = re.compile(r"^(sure|here (are|is)|certainly|of course|okay|ok)\b.*:?\s*$", re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _clean(item: str) -> str:
    item = _ITEM.sub("", item.strip())
    item = item.strip().strip("\"“”'`").strip()
    return re.sub(r"\s+\n", "\n", item)


def _from_json(text: str) -> list[str] | None:
    for chunk in [*_FENCE.findall(text), text]:
        for opener, closer in (("[", "]"), ("{", "}")):
            start, end = chunk.find(opener), chunk.rfind(closer)
            if start < 0 or end <= start:
                continue
            try:
                data = json.loads(chunk[start : end + 1])
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                data = next((v for v in data.values() if isinstance(v, list)), None)
            if isinstance(data, list):
                items = [
                    d if isinstance(d, str) else d.get("prompt")
                    for d in data
                    if isinstance(d, str) or (isinstance(d, dict) and "prompt" in d)
                ]
                return [str(i) for i in items if i]
    return None


def parse_prompts(text: str) -> list[str]:
    """Extract candidate prompts from ``text``; empty items and exact repeats are removed."""
    items = _from_json(text)
    if items is None:
        lines = [ln for ln in text.splitlines() if not _PREAMBLE.match(ln.strip())]
        if sum(bool(_ITEM.match(ln)) for ln in lines) >= 1:
            items, current = [], ""
            for ln in lines:
                if _ITEM.match(ln):
                    if current.strip():
                        items.append(current)
                    current = ln
                elif current and ln[:1].isspace() and ln.strip():
                    current += "\n" + ln  # an indented continuation of the item
                elif current.strip():
                    items.append(current)  # unindented prose ends the list item
                    current = ""
            if current.strip():
                items.append(current)
        else:
            items = re.split(r"\n\s*\n", "\n".join(lines))
    out: list[str] = []
    for raw in items:
        item = _clean(raw)
        if item and item not in out:
            out.append(item)
    return out
