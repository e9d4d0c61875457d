"""An LLM prompt optimizer: an LCEL chain (prompt with the reward context | model | parser)."""

from __future__ import annotations

import logging

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable

from hia_chain.calls import bound_for, call_model
from hia_chain.context import RunContext
from hia_chain.optimizer._parse import parse_prompts
from hia_chain.optimizer.base import OptimizeRequest, PromptOptimizer, Proposal

__all__ = ["LLMPromptOptimizer", "reward_context"]

logger = logging.getLogger(__name__)

_SYSTEM = (
    "You improve prompts for another AI assistant. Rewrite the user's prompt so that the "
    "assistant's answer meets the goal below. Keep the user's request exactly as it is: copy "
    "it word for word and add or adjust instructions about length, style and tone. Never "
    "answer the prompt yourself and never drop or change the task.\n\nGoal:\n{context}"
)
_HUMAN = (
    "Prompt:\n{prompt}\n\n{feedback}Write {n} different rewrites as a JSON array of strings, "
    "and nothing else."
)


def reward_context(request: OptimizeRequest) -> str:
    """Each objective's name, description, scale and target: the paper's reward context."""
    lines = []
    for o in request.objectives:
        lines.append(
            f"- {o.name}: target {request.goal[o.name]:g} on a scale from {o.low:g} "
            f"({o.low_label}) to {o.high:g} ({o.high_label}). {o.description}".rstrip()
        )
    return "\n".join(lines)


def _feedback(request: OptimizeRequest) -> str:
    fb = request.feedback
    if fb is None:
        return ""
    scores = ", ".join(
        f"{k} {v:.1f} (target {request.goal[k]:g})"
        for k, v in fb.measured.items()
        if k in request.goal
    )
    return f"The best prompt so far was:\n{fb.prompt}\nIts answer measured: {scores}.\n\n"


class LLMPromptOptimizer(PromptOptimizer):
    """Asks any chat model for ``n`` rewrites and parses whatever it returns.

    Args:
        llm: The optimizer model (cheap; a small local model or a small API model).
        max_retries: Retries of transient errors; each attempt is one ``optimizer`` call.
        max_tokens: Upper bound used for budgets with token caps on the optimizer role.
    """

    def __init__(
        self, llm: BaseChatModel, *, max_retries: int = 2, max_tokens: int | None = None
    ) -> None:
        self.llm = llm
        self.max_retries = max_retries
        self.model_calls_per_round = 1 + max_retries
        self.max_tokens = max_tokens if max_tokens is not None else getattr(llm, "max_tokens", None)
        prompt = ChatPromptTemplate.from_messages([("system", _SYSTEM), ("human", _HUMAN)])
        # Parsing happens after the chain so the message's usage metadata can be settled.
        self.chain: Runnable[dict[str, object], BaseMessage] = prompt | llm

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        reward, feedback = reward_context(request), _feedback(request)
        inputs = {"context": reward, "prompt": request.prompt, "feedback": feedback, "n": request.n}
        context = context or RunContext()
        text = request.prompt + _SYSTEM + _HUMAN + reward + feedback
        message = await call_model(
            context,
            "optimizer",
            self.chain,
            inputs,
            bound=bound_for(text, self.max_tokens),
            retries=self.max_retries,
        )
        texts = parse_prompts(message.text)
        logger.debug("optimizer proposed %d prompts", len(texts))
        return [Proposal(prompt=t, origin="llm") for t in texts[: request.n]]
