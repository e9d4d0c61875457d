"""An LLM judge as a reference scorer: any chat model grades responses with a 0–4 rubric.

The rubric for the five HelpSteer attributes (helpfulness, correctness, coherence, complexity,
verbosity) follows the HelpSteer2 annotation guidelines; any other objective is graded on its
own scale from its :class:`~hia_chain.goals.Objective` description. The judge is asked for one
JSON object per response and the reply is parsed leniently (JSON anywhere in the text, in code
fences or after prose; else ``name: number`` lines), because structured-output support differs
across providers and small models wrap JSON in chatter. A reply that still lacks a score gets
one corrective follow-up; after that the scorer raises rather than guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from hia_chain.calls import bound_for, call_model
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers._parse import map_bounded, parse_scores, snippet
from hia_chain.scorers.base import ReferenceScorer, check_batch

__all__ = ["HELPSTEER_RUBRICS", "LLMJudgeScorer"]

HELPSTEER_RUBRICS: dict[str, str] = {
    "helpfulness": (
        "Overall helpfulness of the response to the prompt.\n"
        "  4: extremely helpful, completely aligned with what the user asked for\n"
        "  3: mostly helpful, mainly aligned, with some room for improvement\n"
        "  2: partially helpful, misses the overall goal of the request in some way\n"
        "  1: borderline unhelpful, mostly does not capture what the user was looking for\n"
        "  0: not helpful at all, or wrong in a way that defeats the request"
    ),
    "correctness": (
        "Inclusion of all pertinent facts without errors.\n"
        "  4: completely correct and accurate, no hallucinated or misleading content\n"
        "  3: mostly correct, with a small amount of missing or imprecise information\n"
        "  2: partially correct, a mix of correct and incorrect or missing information\n"
        "  1: mostly incorrect, with only a little correct information\n"
        "  0: completely incorrect, or an unwarranted refusal"
    ),
    "coherence": (
        "Consistency and clarity of expression.\n"
        "  4: perfectly coherent and clear, no repetition or contradictions\n"
        "  3: mostly clear, with minor awkward phrasing or formatting issues\n"
        "  2: somewhat coherent, but parts are unclear or contradict each other\n"
        "  1: mostly incoherent, hard to follow\n"
        "  0: completely incoherent, or ignores the prompt"
    ),
    "complexity": (
        "Intellectual depth needed to write the response (not readability of the prompt).\n"
        "  4: expert: needs deep domain expertise\n"
        "  3: advanced: needs a relevant university education or field experience\n"
        "  2: intermediate: needs some college-level education\n"
        "  1: simple: high-school level, uses simple vocabulary\n"
        "  0: basic: anyone with basic language competency could write it"
    ),
    "verbosity": (
        "Amount of detail included, relative to what the prompt asks for.\n"
        "  4: verbose: far more detail and length than needed\n"
        "  3: moderately long: more elaboration than needed\n"
        "  2: average length: neither short nor long for the request\n"
        "  1: pretty short: on the short side of what the request calls for\n"
        "  0: succinct: as short as possible, only the core answer"
    ),
}
"""HelpSteer2 rubric text per attribute, each on the 0–4 scale."""

_SYSTEM = (
    "You are an impartial, strict evaluator of AI assistant responses. Read the user's prompt "
    "and the assistant's response, then rate the response on every attribute listed, using "
    "the rubric given for each. Judge only the response shown. Reply with a single JSON object "
    "mapping each attribute name to a number on its scale, and nothing else, e.g. {example}."
)


class LLMJudgeScorer(ReferenceScorer):
    """Scores responses by asking a chat model to grade them against a per-attribute rubric.

    One judge call per response covers every objective. Calls run concurrently, at most
    ``max_concurrency`` at a time. With a ``context``, each call (a corrective retry
    included) reserves one ``"judge"`` call from ``context.budget`` before it is made, is
    settled with the reply's ``usage_metadata`` (a reply without it is counted as a call with
    unreported tokens, never with invented counts) and runs under
    ``context.child_config("judge")`` so it shows in tracing.

    Args:
        llm: Any LangChain chat model. Set its temperature to 0 for repeatable grades.
        objectives: The objectives to grade. HelpSteer attribute names use
            :data:`HELPSTEER_RUBRICS` (graded 0–4, mapped linearly onto the objective's
            scale); others are graded on their own scale from their description.
        rubrics: Rubric text per objective name, overriding both of the above (the judge then
            grades on the objective's own scale).
        max_concurrency: Most judge calls in flight at once.
        max_tokens: Upper bound on the judge's output tokens, used only for budget
            reservations under a token or cost cap; defaults to the model's ``max_tokens``.
        retries: Corrective follow-ups after an unreadable reply (0 or 1 is sensible).

    Raises:
        ConfigError: no objectives, duplicate names, or bad ``max_concurrency``/``retries``.
    """

    def __init__(
        self,
        llm: BaseChatModel,
        objectives: Sequence[Objective],
        *,
        rubrics: Mapping[str, str] | None = None,
        max_concurrency: int = 4,
        max_tokens: int | None = None,
        retries: int = 1,
    ) -> None:
        if not objectives:
            raise ConfigError("`objectives` is empty: give the judge at least one Objective.")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names):
            msg = f"`objectives` has duplicate names {names}; give each objective once."
            raise ConfigError(msg)
        if max_concurrency < 1:
            msg = f"`max_concurrency` must be >= 1, got {max_concurrency}."
            raise ConfigError(msg)
        if retries < 0:
            msg = f"`retries` must be >= 0, got {retries}."
            raise ConfigError(msg)
        unknown = sorted(set(rubrics or {}) - set(names))
        if unknown:
            msg = f"`rubrics` names objectives the judge does not grade: {unknown}; known: {names}."
            raise ConfigError(msg)
        self.llm = llm
        self.objective_list = tuple(objectives)
        self.objectives = tuple(names)
        self.rubrics = dict(rubrics or {})
        self.max_concurrency = max_concurrency
        bound = max_tokens if max_tokens is not None else getattr(llm, "max_tokens", None)
        self.max_tokens = bound if isinstance(bound, int) else None
        self.retries = retries
        self.model_calls_per_item = 1 + retries  # at most, with the corrective follow-ups

    def _judge_scale(self, obj: Objective) -> tuple[float, float]:
        """The scale the judge is asked to grade ``obj`` on."""
        if obj.name in HELPSTEER_RUBRICS and obj.name not in self.rubrics:
            return (0.0, 4.0)
        return (obj.low, obj.high)

    def _rubric(self, obj: Objective) -> str:
        if obj.name in self.rubrics:
            return self.rubrics[obj.name]
        if obj.name in HELPSTEER_RUBRICS:
            return HELPSTEER_RUBRICS[obj.name]
        ends = f"{_fmt(obj.low)} = {obj.low_label}, {_fmt(obj.high)} = {obj.high_label}"
        return f"{obj.description or obj.name} ({ends})"

    def messages(self, prompt: str, response: str) -> list[BaseMessage]:
        """The judge conversation for one response (public so it can be inspected or logged)."""
        example = "{" + ", ".join(f'"{n}": 3' for n in self.objectives) + "}"
        parts = []
        for obj in self.objective_list:
            lo, hi = self._judge_scale(obj)
            parts.append(
                f"- {obj.name} (number from {_fmt(lo)} to {_fmt(hi)}): {self._rubric(obj)}"
            )
        user = (
            f"[PROMPT]\n{prompt}\n[/PROMPT]\n\n[RESPONSE]\n{response}\n[/RESPONSE]\n\n"
            "Attributes to rate:\n" + "\n".join(parts) + "\n\nAnswer with the JSON object only."
        )
        return [SystemMessage(_SYSTEM.format(example=example)), HumanMessage(user)]

    async def _call(self, messages: list[BaseMessage], context: RunContext | None) -> AIMessage:
        bound = bound_for("\n".join(m.text for m in messages), self.max_tokens)
        reply = await call_model(context or RunContext(), "judge", self.llm, messages, bound=bound)
        if not isinstance(reply, AIMessage):
            msg = f"LLMJudgeScorer: the judge model returned {type(reply).__name__}, not an AIMessage."
            raise RewardModelError(msg)
        return reply

    def _finish(self, raw: Mapping[str, float]) -> dict[str, float]:
        """Clamp each grade to the judge's scale, then map it onto the objective's scale."""
        out: dict[str, float] = {}
        for obj in self.objective_list:
            lo, hi = self._judge_scale(obj)
            value = min(hi, max(lo, raw[obj.name]))
            out[obj.name] = obj.low + (value - lo) / (hi - lo) * obj.span
        return out

    async def _score_one(
        self, prompt: str, response: str, context: RunContext | None
    ) -> dict[str, float]:
        messages = self.messages(prompt, response)
        found: dict[str, float] = {}
        reply_text = ""
        for attempt in range(self.retries + 1):
            reply = await self._call(messages, context)
            reply_text = reply.text
            found.update(
                {
                    k: v
                    for k, v in parse_scores(reply_text, self.objectives).items()
                    if k not in found
                }
            )
            missing = [n for n in self.objectives if n not in found]
            if not missing:
                return self._finish(found)
            if attempt < self.retries:
                messages = [
                    *messages,
                    AIMessage(reply_text),
                    HumanMessage(_corrective(self, missing)),
                ]
        missing = [n for n in self.objectives if n not in found]
        msg = (
            f"LLMJudgeScorer could not read a finite score for objective(s) {missing} after "
            f"{self.retries + 1} judge call(s); last reply: {snippet(reply_text)!r}. Use a "
            "judge model that follows instructions, or set its temperature to 0."
        )
        raise RewardModelError(msg)

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        """Grade every response to ``prompt``, concurrently.

        Raises:
            RewardModelError: a reply still lacks a finite score for some objective after the
                corrective retry (the message names the objective and shows the reply).
            BudgetExceededError: the judge budget cannot pay for every call; its ``partial``
                holds the grades it did make (``None`` for the rest).
        """

        refused: list[BudgetExceededError] = []

        async def one(response: str) -> dict[str, float] | None:
            try:
                return await self._score_one(prompt, response, context)
            except BudgetExceededError as exc:  # keep grading the others the budget still covers
                refused.append(exc)
                return None

        results = await map_bounded(one, list(responses), self.max_concurrency)
        if refused:
            raise BudgetExceededError(str(refused[0]), partial=results)
        return check_batch(results, len(responses), self.objectives, source="LLMJudgeScorer")  # type: ignore[arg-type]


def _corrective(judge: LLMJudgeScorer, missing: Sequence[str]) -> str:
    scales = ", ".join(
        f"{o.name} {_fmt(judge._judge_scale(o)[0])}–{_fmt(judge._judge_scale(o)[1])}"
        for o in judge.objective_list
    )
    example = "{" + ", ".join(f'"{n}": 2' for n in judge.objectives) + "}"
    return (
        f"I could not read a number for: {', '.join(missing)}. Reply again with only one JSON "
        f"object holding a finite number for every attribute ({scales}), like {example}."
    )


def _fmt(x: float) -> str:
    return f"{x:g}"
