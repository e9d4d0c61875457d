"""A scripted chat model for scorer tests: replies from a function of the prompt, records
call kwargs and concurrency, and reports usage and a finish reason like a real provider."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

import anyio
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Answers ``reply(last_message_text)``; a reply of ``None`` raises ``RuntimeError``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reply: Callable[[str], str | None] = Field(default=lambda p: f"echo: {p}")
    latency: float = 0.0
    report_usage: bool = True
    cap_words: int | None = None
    """Cut replies at this many words (per call ``max_tokens`` wins) and say finish_reason=length."""
    seen_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _in_flight: int = PrivateAttr(default=0)
    max_in_flight: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _result(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        prompt = messages[-1].text
        with self._lock:
            self.prompts.append(prompt)
            self.seen_kwargs.append(dict(kwargs))
        text = self.reply(prompt)
        if text is None:
            raise RuntimeError("scripted failure")
        cap = kwargs.get("max_tokens", self.cap_words)
        words = text.split()
        finish = "stop"
        if cap is not None and len(words) >= cap:
            words, finish = words[:cap], "length"
            text = " ".join(words)
        usage = None
        if self.report_usage:
            i = sum(len(m.text.split()) for m in messages)
            usage = {"input_tokens": i, "output_tokens": len(words), "total_tokens": i + len(words)}
        msg = AIMessage(
            content=text, usage_metadata=usage, response_metadata={"finish_reason": finish}
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency:
                await anyio.sleep(self.latency)
            return self._result(messages, **kwargs)
        finally:
            with self._lock:
                self._in_flight -= 1


class ChatStartRecorder(BaseCallbackHandler):
    """Records the tags and parent run of every chat-model call it sees."""

    def __init__(self) -> None:
        self.chat_starts: list[tuple[list[str], UUID | None]] = []

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kw: Any,
    ) -> None:
        self.chat_starts.append((list(tags or []), parent_run_id))
