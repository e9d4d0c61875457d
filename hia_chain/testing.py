"""A fake chat model for testing code built on hia_chain, with no network and no weights.

The test seam ships with the library, as httpx ships ``MockTransport(handler)``: a
:class:`FakeChatModel` answers every call with ``answer(prompt, index)``, a plain function
the test writes, and records what it was asked. It reports ``usage_metadata`` and a
``finish_reason`` like a provider does, so budgets, traces and truncation checks see the
same shapes as with a real model, and it can fail on chosen calls or take a fixed latency.

``instruction_following(seed)`` is an ``answer`` whose length obeys the length instruction
in the prompt, as a real instruction-tuned model's roughly does: enough for a search to have
something to find.

Example::

    model = FakeChatModel(answer=lambda prompt, i: f"answer {i}", latency=0.01)
    aligned = AlignedChatModel(model=model, goal={"verbosity": 1}, budget=2)
    aligned.invoke("Tell me about owls.")
    assert model.calls == 2
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["Answer", "FakeChatModel", "instruction_following"]

Answer = Callable[[str, int], str]
"""``answer(prompt, index) -> reply``: the prompt is the last human message's text, the index
counts calls from 0 in the order they arrive. Raise to make a call fail."""


def _echo(prompt: str, index: int) -> str:
    return f"answer {index} to: {prompt}"


class FakeChatModel(BaseChatModel):
    """A chat model that answers ``answer(prompt, index)`` and records every call.

    Tokens are words here: usage counts words, and ``max_tokens`` cuts words.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: Answer = _echo
    """Makes the reply to each call (see :data:`Answer`)."""
    latency: float = 0.0
    """Seconds each call takes (``anyio.sleep`` when async, so calls overlap)."""
    fail_on: dict[int, BaseException] = Field(default_factory=dict)
    """Call index -> the exception that call raises (after it is recorded and counted)."""
    report_usage: bool = True
    """Attach ``usage_metadata`` (words in, words out); ``False`` acts like a provider that
    reports none."""
    max_tokens: int | None = None
    """The model's own output cap, as a provider model's field (scorers read it as a
    default); a call's ``max_tokens`` argument overrides it. Only cuts with ``truncate``."""
    truncate: bool = False
    """Cut replies at the cap and say ``finish_reason="length"``, as a provider does."""
    model_name: str = "fake-chat-model"
    """Reported as ``response_metadata["model_name"]`` (usage callbacks key on it)."""

    prompts: list[str] = Field(default_factory=list)
    """The prompt of every call, in arrival order."""
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    """The keyword arguments of every call (``max_tokens``, ``seed``, bound ``tools``, ...)."""
    messages_seen: list[list[BaseMessage]] = Field(default_factory=list)
    """The whole conversation of every call."""

    _calls: int = PrivateAttr(default=0)
    _in_flight: int = PrivateAttr(default=0)
    _max_in_flight: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def calls(self) -> int:
        """Calls received so far, failed ones included."""
        return self._calls

    @property
    def max_in_flight(self) -> int:
        """The most async calls that were in progress at once."""
        return self._max_in_flight

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    def _record(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, int]:
        prompt = next(
            (m.text for m in reversed(messages) if isinstance(m, HumanMessage)),
            messages[-1].text if messages else "",
        )
        with self._lock:
            index = self._calls
            self._calls += 1
            self.prompts.append(prompt)
            self.call_kwargs.append(dict(kwargs))
            self.messages_seen.append(list(messages))
        return prompt, index

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        prompt, index = self._record(messages, kwargs)
        if index in self.fail_on:
            raise self.fail_on[index]
        text = self.answer(prompt, index)
        words = text.split()
        cap = kwargs.get("max_tokens", self.max_tokens)
        finish = "stop"
        if self.truncate and cap is not None and len(words) > cap:
            words, finish = words[:cap], "length"
            text = " ".join(words)
        usage = None
        if self.report_usage:
            seen = sum(len(m.text.split()) for m in messages)
            usage = UsageMetadata(
                input_tokens=seen, output_tokens=len(words), total_tokens=seen + len(words)
            )
        message = AIMessage(
            content=text,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "finish_reason": finish},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return self._reply(messages, kwargs)

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
            return self._reply(messages, kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1


# Median words an instruction-following model writes per length instruction (else 110).
_LENGTH_CUES: Sequence[tuple[str, int]] = (
    (r"one short sentence|ten words", 12),
    (r"briefly|few sentences", 35),
    (r"one paragraph", 70),
    (r"great detail|long, thorough", 320),
    (r"in detail|detailed", 170),
)


def instruction_following(seed: int, stretch: float = 1.0) -> Answer:
    """An :data:`Answer` whose length follows the prompt's length instruction, with seeded
    log-normal noise (the same seed and call order give the same replies).

    Args:
        seed: Seeds the noise.
        stretch: > 1 makes a model that always writes longer than asked: the instructions'
            nominal levels then mislead, and only a heuristic that learns the model corrects it.
    """
    rng = random.Random(seed)

    def answer(prompt: str, index: int) -> str:
        words = next((n for cue, n in _LENGTH_CUES if re.search(cue, prompt, re.I)), 110)
        return " ".join(["word"] * max(1, round(words * stretch * rng.lognormvariate(0, 0.35))))

    return answer
