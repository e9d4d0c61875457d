"""Instruction phrases per built-in objective and level 0–4 (two phrasings each).

Levels are on the normalised 0–4 grid; targets on other scales are mapped onto it. Chosen
from what small instruction-tuned models measurably follow (DESIGN §4).
"""

from __future__ import annotations

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
