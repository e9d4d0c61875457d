"""``stream: true`` as OpenAI's server-sent events.

An aligned answer is known only once the search has chosen it, so the stream carries the
search's progress first, as SSE *comments* (``: hia {...}`` lines, which every SSE client
and the OpenAI SDKs skip), then the chosen answer as content chunks, a finish chunk with the
trace in ``hia``, the usage chunk if ``stream_options.include_usage``, and ``data: [DONE]``.
An error after the response has started is sent as ``data: {"error": {...}}`` (the SDKs
raise it) before the stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hia_chain.server.align import Progress
from hia_chain.server.errors import from_exception
from hia_chain.server.models import ChatCompletion

__all__ = ["DONE", "aligned_stream", "comment", "event", "relay_stream"]

DONE = b"data: [DONE]\n\n"


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


def _progress_line(name: str, data: dict[str, Any]) -> str:
    """A short progress record (the full candidates go in the final trace, not here)."""
    if name == "hia_proposed":
        data = {"round": data.get("round"), "proposed": len(data.get("candidates") or ())}
    return "hia " + json.dumps({"event": name, **data}, separators=(",", ":"), default=str)


async def aligned_stream(
    run: Callable[[Progress], Awaitable[ChatCompletion]], *, include_usage: bool
) -> AsyncIterator[bytes]:
    """Progress comments while ``run`` searches, then its answer as chunks."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def progress(name: str, data: dict[str, Any]) -> None:
        queue.put_nowait(comment(_progress_line(name, data)))

    async def work() -> ChatCompletion:
        try:
            return await run(progress)
        finally:
            queue.put_nowait(None)

    task = asyncio.ensure_future(work())
    try:
        while (item := await queue.get()) is not None:
            yield item
        try:
            completion = task.result()
        except Exception as exc:
            yield event(from_exception(exc).body())
            return
        for chunk in answer_chunks(completion, include_usage=include_usage):
            yield event(chunk)
        yield DONE
    finally:
        if not task.done():  # the client went away: stop spending on its behalf
            task.cancel()


def answer_chunks(completion: ChatCompletion, *, include_usage: bool) -> list[dict[str, Any]]:
    """A finished completion as the chunks a streamed one would have had."""
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    choice = completion.choices[0]
    message = choice.get("message") or {}
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = message.get("tool_calls")
    if calls:
        delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls)]
    out = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}]
    finish: dict[str, Any] = {
        "index": 0,
        "delta": {},
        "finish_reason": choice.get("finish_reason") or "stop",
    }
    out.append({**base, "choices": [finish], "hia": completion.hia})
    if include_usage:
        usage = completion.usage.model_dump() if completion.usage else None
        out.append({**base, "choices": [], "usage": usage})
    return out


async def relay_stream(
    chunks: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[bytes]:
    """An upstream's chunks relayed as they come (passthrough)."""
    try:
        async for chunk in chunks:
            yield event(chunk)
    except Exception as exc:
        yield event(from_exception(exc).body())
        return
    yield DONE
