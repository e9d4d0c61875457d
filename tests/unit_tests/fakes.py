"""Fake chat models and scorers for control-flow tests (no network, no weights).

``CountingChatModel`` counts every call, can sleep, can fail on chosen calls, and reports
usage; ``instruction_following`` makes its answer length follow the length instruction in
the prompt, like a real instruction-tuned model would (with seeded noise).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from hia_chain.context import RunContext
from hia_chain.scorers.base import ReferenceScorer


class TransientError(ConnectionError):
    """Stands in for a dropped connection."""


class FatalError(RuntimeError):
    """Stands in for an authentication error: never retried."""


def _last_human(messages: Sequence[BaseMessage]) -> str:
    return next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))


class CountingChatModel(BaseChatModel):
    """Answers ``answer(prompt, call_index)``; counts calls; fails where told to."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: Callable[[str, int], str] = Field(default=lambda p, i: f"answer {i} to: {p}")
    latency: float = 0.0
    fail_on: dict[int, BaseException] = Field(default_factory=dict)
    report_usage: bool = True
    max_tokens: int | None = None
    _calls: int = PrivateAttr(default=0)
    _in_flight: int = PrivateAttr(default=0)
    _max_in_flight: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    prompts: list[str] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    """The keyword arguments of every call (e.g. ``max_tokens``)."""
    messages_seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    def _respond(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[int, str]:
        with self._lock:
            index = self._calls
            self._calls += 1
            prompt = _last_human(messages)
            self.prompts.append(prompt)
            self.call_kwargs.append(dict(kwargs))
            self.messages_seen.append(list(messages))
        if index in self.fail_on:
            raise self.fail_on[index]
        return index, self.answer(prompt, index)

    def _message(self, messages: list[BaseMessage], text: str) -> ChatResult:
        usage = None
        if self.report_usage:
            i = sum(len(m.text.split()) for m in messages)
            o = len(text.split())
            usage = {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
        msg = AIMessage(
            content=text, usage_metadata=usage, response_metadata={"model_name": "counting-fake"}
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _, text = self._respond(messages, kwargs)
        return self._message(messages, text)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if self.latency:
                await anyio.sleep(self.latency)
            _, text = self._respond(messages, kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1
        return self._message(messages, text)


# Words an instruction-following model writes per length instruction (median), and plain.
_LENGTH_CUES: list[tuple[str, int]] = [
    (r"one short sentence|ten words", 12),
    (r"briefly|few sentences", 35),
    (r"one paragraph", 70),
    (r"great detail|long, thorough", 320),
    (r"in detail|detailed", 170),
]


def instruction_following(seed: int, stretch: float = 1.0) -> Callable[[str, int], str]:
    """An ``answer`` function whose length follows the prompt's length instruction.

    ``stretch`` > 1 makes a model that writes longer than asked, every time: the instructions'
    nominal levels then mislead, and only a heuristic that learns the model can correct it.
    """
    rng = random.Random(seed)

    def answer(prompt: str, index: int) -> str:
        words = 110
        for pattern, n in _LENGTH_CUES:
            if re.search(pattern, prompt, re.I):
                words = n
                break
        words = max(1, round(words * stretch * rng.lognormvariate(0, 0.35)))
        return " ".join(["word"] * words)

    return answer


class WordCountScorer(ReferenceScorer):
    """Verbosity as words / 25, clipped to 0–4: a stand-in with a known formula."""

    objectives = ("verbosity",)

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        return [{"verbosity": min(4.0, len(r.split()) / 25)} for r in responses]
