"""What a rewrite adds to a prompt: the instruction phrase bank and the diff that finds them.

One home for both, so the template optimizer that writes instructions, the instruction
heuristic that reads them, the learned heuristic's features and stage 1's near-duplicate test
agree on what "the added instruction" is.

Phrases are per built-in objective and level 0–4 (two phrasings each). Levels are on the
normalised 0–4 grid; targets on other scales are mapped onto it. Chosen from what small
instruction-tuned models measurably follow (DESIGN §4).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

__all__ = ["PHRASES", "added_text", "candidate_text", "cut_to_sentence", "output_cap"]

PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "verbosity": (
        ("Answer in one short sentence.", "Reply in ten words or fewer."),
        ("Answer briefly, in two or three sentences.", "Keep the answer short: a few sentences."),
        ("Answer in one paragraph.", "Give a moderately detailed answer of one paragraph."),
        ("Give a detailed answer of several paragraphs.", "Explain in detail."),
        (
            "Explain in great detail and at length, covering every aspect with examples.",
            "Write a long, thorough, multi-paragraph answer with examples and explanations.",
        ),
    ),
    "complexity": (
        (
            "Explain it as if to a five-year-old, with very simple words.",
            "Use only very simple words and short sentences.",
        ),
        (
            "Use plain, simple language anyone can follow.",
            "Keep the language simple and easy to read.",
        ),
        ("Use clear everyday language.", "Write in a clear, standard style."),
        (
            "Use precise technical vocabulary.",
            "Write for an informed reader, with technical terms.",
        ),
        (
            "Write for specialists in dense, academic, technical language.",
            "Use advanced terminology and complex sentences, as in a research paper.",
        ),
    ),
    "sentiment": (
        ("Write in a gloomy, pessimistic, negative tone.", "Sound sad and negative."),
        ("Write in a sober, somewhat critical tone.", "Be a little skeptical and reserved."),
        ("Write in a neutral, factual tone.", "Stay neutral and matter-of-fact."),
        ("Write in a warm, positive tone.", "Sound friendly and upbeat."),
        (
            "Write in an enthusiastic, joyful, very positive tone.",
            "Be delighted and wonderfully positive!",
        ),
    ),
}


_DIFF_CELLS = 40_000
"""Largest words(original) × words(candidate) middle still diffed with difflib (quadratic)."""


def added_text(original: str, candidate: str) -> str:
    """The words a candidate inserts or substitutes relative to the original.

    Linear in the text for the rewrites optimizers make (instructions before, after, or
    around the unchanged request): the common prefix and suffix are cut, then the rest of the
    original is looked up as one run inside the rest of the candidate. Only a small remainder
    is diffed word by word; a large one falls back to the candidate's words the original
    lacks (by count), so a 20,000-word prompt takes milliseconds, not minutes.
    """
    a, b = original.split(), candidate.split()
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end = 0
    while end < limit - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a_mid, b_mid = a[start : len(a) - end], b[start : len(b) - end]
    if not a_mid or not b_mid:
        return " ".join(b_mid)
    at = _find_run(b_mid, a_mid)
    if at is not None:
        return " ".join(b_mid[:at] + b_mid[at + len(a_mid) :])
    if len(a_mid) * len(b_mid) <= _DIFF_CELLS:
        ops = difflib.SequenceMatcher(a=a_mid, b=b_mid, autojunk=False).get_opcodes()
        return " ".join(
            " ".join(b_mid[j1:j2]) for tag, _, _, j1, j2 in ops if tag in ("insert", "replace")
        )
    left = Counter(a_mid)
    out = []
    for w in b_mid:
        if left[w] > 0:
            left[w] -= 1
        else:
            out.append(w)
    return " ".join(out)


def _find_run(haystack: list[str], needle: list[str]) -> int | None:
    """Index of ``needle`` as a contiguous run of words in ``haystack`` (by string search)."""
    sep = "\x00"
    text, run = sep + sep.join(haystack) + sep, sep + sep.join(needle) + sep
    pos = text.find(run)
    if pos < 0:
        return None
    return text.count(sep, 0, pos)


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_CAP = re.compile(r"\n\n\(Output limit: (\d+) tokens\.\)\Z")


def candidate_text(prompt: str, system: str | None = None, max_tokens: int | None = None) -> str:
    """One text for a candidate's user turn, system instruction and output cap.

    What stage 1 and the heuristics read, so they see an instruction wherever it is sent and
    can tell a capped variant from its twin: a system instruction comes first as
    ``System: ...``, an output cap last (:func:`output_cap` reads it back); just ``prompt``
    when there is neither.
    """
    text = prompt if system is None else f"System: {system}\n\nUser: {prompt}"
    return text if max_tokens is None else f"{text}\n\n(Output limit: {max_tokens} tokens.)"


def output_cap(text: str) -> int | None:
    """The output cap :func:`candidate_text` wrote into ``text``, or None."""
    found = _CAP.search(text)
    return int(found.group(1)) if found else None


def cut_to_sentence(text: str) -> str:
    """``text`` up to its last complete sentence.

    For an answer cut short by a candidate's own output cap: the user never asked for that
    cap, so they get whole sentences, not "...against". Unchanged when no sentence ends in it
    (the whole answer is one unfinished sentence).
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else text
