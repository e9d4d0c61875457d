"""Where requests go: any OpenAI-compatible endpoint, or the embedded model in-process.

Both speak OpenAI's JSON both ways (a request body in, a chat completion or its chunks out),
so the search's responder and the passthrough never translate to LangChain messages for the
HTTP path. The HTTP upstream is ``openai.AsyncOpenAI`` with ``max_retries=0``: a retry is
the search's decision, reserved and paid from the budget, so the provider never sees an
attempt the budget did not count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from hia_chain.server.errors import APIError

__all__ = ["LocalUpstream", "OpenAIUpstream", "Upstream", "completion_text", "openai_usage"]


class Upstream(Protocol):
    """The response model behind the server."""

    model: str
    """The model id asked for upstream and shown to clients."""
    where: str
    """Where it runs, for ``/health`` (a base URL, or ``embedded``)."""

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion (``stream`` false) as OpenAI's JSON."""
        ...

    def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """One streamed chat completion: its chunks, the last with ``usage``."""
        ...

    async def start(self) -> None:
        """Connect or load before the first request (fail fast at start-up)."""
        ...

    async def aclose(self) -> None: ...


def completion_text(completion: dict[str, Any]) -> str:
    """What the reference scorers see of an answer: its text, else its tool-call arguments."""
    message = (completion.get("choices") or [{}])[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content:
        return str(content)
    calls = message.get("tool_calls") or []
    return " ".join(str((c.get("function") or {}).get("arguments", "")) for c in calls)


def openai_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """A completion's ``usage`` in OpenAI's spelling (read back by
    :func:`hia_chain.budget.completion_usage`)."""
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class OpenAIUpstream:
    """An OpenAI-compatible endpoint through ``openai.AsyncOpenAI`` (no SDK retries)."""

    def __init__(self, base_url: str, model: str, api_key: str, timeout: float) -> None:
        import openai

        self.model = model
        self.where = base_url
        self._openai = openai
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0
        )

    async def start(self) -> None:
        return None

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        out = await self.client.post("/chat/completions", body=body, cast_to=dict)
        if not isinstance(out, dict) or not out.get("choices"):
            raise APIError(
                502, "The upstream model answered without choices.", type="upstream_error"
            )
        return out

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        chunks = await self.client.post(
            "/chat/completions",
            body={**body, "stream": True},
            cast_to=dict,
            stream=True,
            stream_cls=self._openai.AsyncStream[dict],
        )
        async with chunks:
            async for chunk in chunks:
                yield chunk

    async def aclose(self) -> None:
        await self.client.close()


_LOCAL_UNSUPPORTED = ("tools", "functions", "response_format", "logprobs", "tool_choice")


class LocalUpstream:
    """The embedded SmolLM2 (``LocalChatModel``) in this process: ``hia-chain serve`` offline.

    Concurrent calls are batched into one forward pass by ``LocalChatModel``; tools and JSON
    mode are refused with a 400 (a 135M model has neither).
    """

    where = "embedded"

    def __init__(self, max_tokens: int, llm: Any = None) -> None:
        """``llm``: a chat model to serve instead of the embedded one (tests inject a fake)."""
        if llm is None:
            from hia_chain.local import LocalChatModel

            llm = LocalChatModel(max_tokens=max_tokens)
        self.llm = llm
        self.model: str = getattr(llm, "model_name", type(llm).__name__)

    async def start(self) -> None:
        await self.llm.ainvoke("Hi", max_tokens=1)  # load the weights now, not on a request

    def _convert(self, body: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        from langchain_core.messages import convert_to_messages

        for name in _LOCAL_UNSUPPORTED:
            if body.get(name) not in (None, [], False):
                msg = (
                    f"`{name}` is not supported by the embedded model; start the server with "
                    "--upstream-base-url for a model that has it."
                )
                raise APIError(400, msg, param=name, code="unsupported_parameter")
        if (body.get("n") or 1) != 1:
            raise APIError(400, "`n` must be 1 for the embedded model.", param="n")
        kwargs: dict[str, Any] = {}
        bound = body.get("max_completion_tokens") or body.get("max_tokens")
        if bound:
            kwargs["max_tokens"] = int(bound)
        for name in ("temperature", "top_p", "seed"):
            if body.get(name) is not None:
                kwargs[name] = body[name]
        stop = body.get("stop")
        if stop:
            kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
        try:
            messages = convert_to_messages(body["messages"])
        except (ValueError, KeyError, TypeError) as exc:
            raise APIError(400, f"`messages` cannot be read: {exc}", param="messages") from exc
        return messages, kwargs

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        messages, kwargs = self._convert(body)
        msg = await self.llm.ainvoke(messages, **kwargs)
        finish = msg.response_metadata.get("finish_reason", "stop")
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": msg.text},
                    "finish_reason": finish,
                }
            ],
        }
        if msg.usage_metadata:  # unreported stays unreported: never a made-up zero
            usage = msg.usage_metadata
            completion["usage"] = openai_usage(usage["input_tokens"], usage["output_tokens"])
        return completion

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        messages, kwargs = self._convert(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        first = True
        async for piece in self.llm.astream(messages, **kwargs):
            usage = piece.usage_metadata
            if piece.text:
                delta: dict[str, Any] = {"content": piece.text}
                if first:
                    delta["role"] = "assistant"
                    first = False
                yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            if usage:
                finish = piece.response_metadata.get("finish_reason", "stop")
                yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                yield {
                    **base,
                    "choices": [],
                    "usage": openai_usage(usage["input_tokens"], usage["output_tokens"]),
                }

    async def aclose(self) -> None:
        return None
