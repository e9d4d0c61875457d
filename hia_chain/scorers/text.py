"""Reference text metrics: verbosity, complexity and sentiment of a response, on a 0–4 scale.

These are the package's built-in ground truth for goal-conditioned answers. Each maps a plain
text statistic onto the objective's scale through a documented, monotone mapping whose anchors
were chosen from what a small chat model actually writes when asked (DESIGN §4: the embedded
SmolLM2 writes ~13 words for "Answer in one short sentence.", ~100 plain, 125+ for "Explain in
detail"; Flesch-Kincaid grade 4.7 for "as if to a five-year-old", 8.2 plain, 11.2 for "precise
technical vocabulary"). The anchors line up with the instruction phrases the template
optimizer composes for each level, so every level is reachable by prompting.

All three are pure CPU work of microseconds per response, so they score synchronously inside
``ascore``; none of them calls a model or spends budget.
"""

from __future__ import annotations

import math
import re
import threading
from abc import abstractmethod
from collections.abc import Iterable, Sequence

import anyio
import textstat
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from hia_chain.context import RunContext
from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.scorers import _syllables as syllables
from hia_chain.scorers.base import ReferenceScorer, check_batch

__all__ = [
    "BUILTIN_OBJECTIVES",
    "ComplexityScorer",
    "SentimentScorer",
    "VerbosityScorer",
    "builtin_scorer",
    "builtin_scorers",
    "count_words",
]

DEFAULT_VERBOSITY_ANCHORS: tuple[float, ...] = (10.0, 30.0, 80.0, 160.0, 320.0)
DEFAULT_COMPLEXITY_ANCHORS: tuple[float, ...] = (4.5, 6.5, 8.5, 11.0, 14.0)

_WORD = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?")


def count_words(text: str) -> int:
    """Words in ``text``: runs of letters/digits (markdown bullets and punctuation don't count)."""
    return len(_WORD.findall(text))


def _interp(x: float, xs: Sequence[float], low: float, high: float) -> float:
    """Piecewise-linear map of ``x`` through anchors ``xs`` at evenly spaced levels of [low, high].

    Below the first anchor gives ``low``, above the last gives ``high``.
    """
    if x <= xs[0]:
        return low
    if x >= xs[-1]:
        return high
    step = (high - low) / (len(xs) - 1)
    for i in range(1, len(xs)):
        if x <= xs[i]:
            frac = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return low + step * (i - 1 + frac)
    return high  # unreachable: x < xs[-1] was checked


def _check_anchors(anchors: Sequence[float], field: str, *, positive: bool) -> tuple[float, ...]:
    values = tuple(float(a) for a in anchors)
    if len(values) < 2:
        msg = f"`{field}` needs at least 2 anchors (one per end of the scale), got {values}."
        raise ConfigError(msg)
    if not all(math.isfinite(a) for a in values) or any(
        b <= a for a, b in zip(values, values[1:], strict=False)
    ):
        msg = f"`{field}` must be finite and strictly increasing, got {values}."
        raise ConfigError(msg)
    if positive and values[0] <= 0:
        msg = f"`{field}` are word counts interpolated in log space: all must be > 0, got {values}."
        raise ConfigError(msg)
    return values


_WARM_LOCK = threading.Lock()


class _TextMetricScorer(ReferenceScorer):
    """One objective computed from the response text alone, mapped onto [low, high]."""

    default_name: str = ""

    def __init__(self, *, low: float = 0.0, high: float = 4.0, name: str | None = None) -> None:
        if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            msg = f"`high` must be greater than `low` (the objective's scale), got low={low}, high={high}."
            raise ConfigError(msg)
        self.low = float(low)
        self.high = float(high)
        self.name = name or self.default_name
        self.objectives = (self.name,)

    @abstractmethod
    def score_text(self, text: str) -> float:
        """Score one response synchronously, on [low, high]."""

    def warm_up(self) -> None:
        """Load whatever the first score would load (a blocking, one-time cost)."""

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        """Score each response; ``prompt`` and ``context`` are unused (text metrics need neither).

        The first call warms the scorer up on a worker thread, so a dictionary loading (textstat
        takes seconds) never stalls the event loop every concurrent request shares.
        """
        if not getattr(self, "_warm", False):
            await anyio.to_thread.run_sync(self._warm_once)
        results = [{self.name: self.score_text(r)} for r in responses]
        return check_batch(results, len(responses), self.objectives, source=type(self).__name__)

    def _warm_once(self) -> None:
        with _WARM_LOCK:
            if not getattr(self, "_warm", False):
                self.warm_up()
                self._warm = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, low={self.low}, high={self.high})"


class VerbosityScorer(_TextMetricScorer):
    """Verbosity from the word count, interpolated in log(words) between anchors.

    Default anchors (0–4 scale; each level is one anchor, evenly spaced on ``[low, high]``):

    ======  =====  ==========================================================
    level   words  what it looks like
    ======  =====  ==========================================================
    0       ≤ 10   one short sentence (SmolLM2 asked for one: ~13 words → 0.3)
    1       30     two or three sentences
    2       80     one paragraph (SmolLM2 unprompted: ~100 words → 2.3)
    3       160    several paragraphs ("Explain in detail")
    4       ≥ 320  long, detailed, multi-paragraph
    ======  =====  ==========================================================

    Log space because length instructions act multiplicatively: "one paragraph" vs "several"
    is a ratio, not a difference. The lowest anchor is 10 words rather than fewer so that a
    model's typical one-sentence answer lands within tolerance of 0 and target 0 is reachable.

    Note: a response truncated at ``max_tokens`` scores by what was written; with
    ``max_tokens=96`` (~70 words) levels above ~2 are out of reach.

    Args:
        low: Bottom of the objective's scale (score of ``≤ anchors[0]`` words).
        high: Top of the objective's scale (score of ``≥ anchors[-1]`` words).
        anchors: Word counts at evenly spaced levels from ``low`` to ``high``; at least 2,
            positive and strictly increasing.
        name: Objective name produced (default ``"verbosity"``).

    Raises:
        ConfigError: bad scale or anchors.
    """

    default_name = "verbosity"

    def __init__(
        self,
        *,
        low: float = 0.0,
        high: float = 4.0,
        anchors: Sequence[float] = DEFAULT_VERBOSITY_ANCHORS,
        name: str | None = None,
    ) -> None:
        super().__init__(low=low, high=high, name=name)
        self.anchors = _check_anchors(anchors, "anchors", positive=True)
        self._log_anchors = tuple(math.log(a) for a in self.anchors)

    def score_text(self, text: str) -> float:
        """Verbosity of one response on [low, high]."""
        return self.level(count_words(text))

    def level(self, words: float) -> float:
        """Verbosity of an answer of ``words`` words on [low, high]."""
        if words <= 0:
            return self.low
        return _interp(math.log(words), self._log_anchors, self.low, self.high)


class ComplexityScorer(_TextMetricScorer):
    """Complexity from the Flesch-Kincaid grade level (``textstat``), linear between anchors.

    Default anchors (0–4 scale):

    ======  ========  ===========================================================
    level   FK grade  what it looks like
    ======  ========  ===========================================================
    0       ≤ 4.5     words for a five-year-old (SmolLM2 asked so: 4.7 → 0.1)
    1       6.5       plain, simple language
    2       8.5       clear everyday prose (SmolLM2 unprompted: 8.2 → 1.85)
    3       11        technical vocabulary (SmolLM2 asked so: 11.2 → 3.1)
    4       ≥ 14      dense, academic, specialist prose
    ======  ========  ===========================================================

    Empty text, or text with no sentence textstat can parse (FK grade 0 or negative), scores
    ``low``: never NaN.

    Args:
        low: Bottom of the objective's scale.
        high: Top of the objective's scale.
        anchors: FK grades at evenly spaced levels from ``low`` to ``high``; at least 2 and
            strictly increasing.
        name: Objective name produced (default ``"complexity"``).

    Raises:
        ConfigError: bad scale or anchors.
    """

    default_name = "complexity"

    def __init__(
        self,
        *,
        low: float = 0.0,
        high: float = 4.0,
        anchors: Sequence[float] = DEFAULT_COMPLEXITY_ANCHORS,
        name: str | None = None,
    ) -> None:
        super().__init__(low=low, high=high, name=name)
        self.anchors = _check_anchors(anchors, "anchors", positive=False)

    def warm_up(self) -> None:
        """textstat loads its syllable dictionary at the first score: seconds of blocking."""
        syllables.install()
        textstat.flesch_kincaid_grade("A short sentence warms the dictionary up.")

    def score_text(self, text: str) -> float:
        """Complexity of one response on [low, high]."""
        syllables.install()  # before textstat's first count, which would load all of CMUdict
        if not text.strip():
            return self.low
        grade = float(textstat.flesch_kincaid_grade(text))
        if not math.isfinite(grade):
            return self.low
        return _interp(grade, self.anchors, self.low, self.high)


class SentimentScorer(_TextMetricScorer):
    """Sentiment from VADER's compound score, mapped linearly onto the scale.

    ==========  ==========  ====================================================
    compound    0–4 score   what it looks like
    ==========  ==========  ====================================================
    -1          0           gloomy, negative (SmolLM2 asked so: +0.43 → 2.9)
    0           2           neutral, factual; also empty text
    +1          4           enthusiastic, joyful (SmolLM2 asked so: +0.95 → 3.9)
    ==========  ==========  ====================================================

    Chat models are upbeat by default (SmolLM2 unprompted: +0.74 → 3.5), so targets below 2
    need a clearly negative instruction. One ``SentimentIntensityAnalyzer`` is built per scorer
    and reused (it loads its lexicon once); scoring is read-only, so sharing it across
    concurrent requests is safe.

    Args:
        low: Score of compound -1.
        high: Score of compound +1.
        name: Objective name produced (default ``"sentiment"``).

    Raises:
        ConfigError: bad scale.
    """

    default_name = "sentiment"

    def __init__(self, *, low: float = 0.0, high: float = 4.0, name: str | None = None) -> None:
        super().__init__(low=low, high=high, name=name)
        self._analyzer = SentimentIntensityAnalyzer()

    def score_text(self, text: str) -> float:
        """Sentiment of one response on [low, high]."""
        compound = float(self._analyzer.polarity_scores(text)["compound"])
        if not math.isfinite(compound):
            compound = 0.0
        compound = min(1.0, max(-1.0, compound))
        return self.low + (compound + 1.0) / 2.0 * (self.high - self.low)


BUILTIN_OBJECTIVES: dict[str, Objective] = {
    "verbosity": Objective(
        name="verbosity",
        description=(
            "Length and amount of detail of the answer, measured by its word count. "
            "0 = one short sentence (about 10 words); 1 = two or three sentences (~30 words); "
            "2 = one paragraph (~80 words); 3 = several paragraphs (~160 words); "
            "4 = long, detailed, multi-paragraph answer (300+ words). Steer it with explicit "
            "length instructions."
        ),
        low_label="one short sentence",
        high_label="long, detailed, multi-paragraph",
    ),
    "complexity": Objective(
        name="complexity",
        description=(
            "Reading level of the language, measured by the Flesch-Kincaid grade (longer "
            "sentences and longer words score higher). 0 = very simple words and short "
            "sentences a five-year-old understands; 1 = plain, simple language; 2 = clear "
            "everyday prose; 3 = technical vocabulary for an informed reader; 4 = dense, "
            "academic, specialist prose with long sentences. Steer it by naming the audience "
            "and the vocabulary to use."
        ),
        low_label="simple words for a five-year-old",
        high_label="dense academic, technical prose",
    ),
    "sentiment": Objective(
        name="sentiment",
        description=(
            "Emotional tone of the answer, measured by VADER sentiment. 0 = gloomy, "
            "pessimistic, negative; 1 = sober, somewhat critical; 2 = neutral and factual; "
            "3 = warm and positive; 4 = enthusiastic, joyful, very positive. Steer it with a "
            "tone instruction; keep the content of the answer."
        ),
        low_label="gloomy and negative",
        high_label="enthusiastic and very positive",
    ),
}
"""The three objectives measured by the built-in text scorers, all on a 0–4 scale."""

_BUILTIN_SCORERS: dict[str, type[_TextMetricScorer]] = {
    "verbosity": VerbosityScorer,
    "complexity": ComplexityScorer,
    "sentiment": SentimentScorer,
}


def builtin_scorer(name: str | Objective) -> ReferenceScorer:
    """The built-in text scorer for an objective.

    Args:
        name: ``"verbosity"``, ``"complexity"`` or ``"sentiment"``; or an :class:`Objective`
            with one of those names, whose ``low``/``high`` scale the scorer then maps onto.

    Raises:
        ConfigError: no built-in scorer has that name.
    """
    objective = name if isinstance(name, Objective) else BUILTIN_OBJECTIVES.get(name)
    key = name.name if isinstance(name, Objective) else name
    if objective is None or key not in _BUILTIN_SCORERS:
        known = ", ".join(sorted(_BUILTIN_SCORERS))
        msg = (
            f"No built-in scorer for objective {key!r}; built-in ones are: {known}. "
            "For other objectives pass a scorer (e.g. LLMJudgeScorer or FunctionScorer)."
        )
        raise ConfigError(msg)
    return _BUILTIN_SCORERS[key](low=objective.low, high=objective.high)


def builtin_scorers(names: Iterable[str | Objective]) -> list[ReferenceScorer]:
    """One built-in text scorer per name (see :func:`builtin_scorer`), in order.

    Raises:
        ConfigError: a name has no built-in scorer.
    """
    return [builtin_scorer(n) for n in names]
