"""The prompt's own constraints ("at least 300 words", "in JSON"), found so goals respect them.

A goal instruction appended to a prompt that fixes its own length or format fights it: "Answer
in one short sentence." after "Write at least 300 words" leaves a small model to pick one at
random. The user's explicit request wins; the goal steers what the request leaves open. The
template optimizer says so in the candidate itself.
"""

from __future__ import annotations

import re

__all__ = ["Constraint", "find_constraints", "precedence_clause"]

Constraint = str
"""``"length"`` or ``"format"``."""

_NUMBER = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred)"
_LENGTH = re.compile(
    rf"\b{_NUMBER}[- ]+(?:words?|sentences?|paragraphs?|lines?|bullet(?: point)?s?|points?|"
    r"characters?|pages?|items?|steps?|tips?|reasons?|examples?|ideas?|questions?)\b|"
    r"\b(?:haiku|limerick|sonnet|tweet|one-liner|essay|slogan|tagline|title|headline)s?\b",
    re.I,
)
_FORMAT = re.compile(
    r"\b(?:json|yaml|csv|xml|markdown|html|table|bullet(?:ed)?(?: points?| list)?|numbered list|"
    r"list of|in (?:all )?(?:capital|lower ?case|upper ?case) letters|all caps|title case|"
    r"without (?:using|the letter|any)|do not use|don't use|wrap (?:your|the) (?:entire )?"
    r"(?:response|answer)|start (?:your|the) (?:response|answer) with|end (?:your|the) "
    r"(?:response|answer) with|placeholders?|sections?|highlight)\b",
    re.I,
)


def find_constraints(prompt: str) -> list[Constraint]:
    """Which kinds of constraint the prompt sets itself, in a fixed order."""
    found = []
    if _LENGTH.search(prompt):
        found.append("length")
    if _FORMAT.search(prompt):
        found.append("format")
    return found


def precedence_clause(constraints: list[Constraint]) -> str:
    """The sentence that tells the model who wins where the goal and the request disagree."""
    if not constraints:
        return ""
    what = " and ".join(constraints)
    return f"Keep every {what} requirement of the request above; within them:"
