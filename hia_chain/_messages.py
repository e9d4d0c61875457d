"""How a candidate becomes the conversation ``AlignedChatModel`` sends, and the chosen answer
the message (and one stream chunk) it returns.

The aligned request is the last human message of a conversation. A candidate changes that
message's text (an appended instruction), adds a system instruction, or both; everything
else in the conversation (history, tool results, images) is sent as the caller gave it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.utils.utils import LC_ID_PREFIX

from hia_chain.errors import ConfigError
from hia_chain.instructions import cut_to_sentence
from hia_chain.search.types import Request, SearchResult

__all__ = [
    "announced",
    "answer_chunk",
    "as_chunk",
    "candidate_messages",
    "cut_capped",
    "fixed_chars",
    "instructions_in_system",
    "last_human",
    "scored_text",
    "sum_usage",
    "with_system",
    "with_text",
]

_NON_TEXT_BLOCK_TOKENS = 2048
"""Allowance per image/audio/file block: providers bill such a block by its size, not its
characters (a high-detail image is about 1,100 tokens at OpenAI and 1,600 at Anthropic)."""


def last_human(messages: Sequence[BaseMessage]) -> tuple[int, str]:
    """The index and text of the message to align: the last human message.

    Raises:
        ConfigError: the conversation has no human message.
    """
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i, messages[i].text
    msg = "AlignedChatModel needs a human message to align: the input has none."
    raise ConfigError(msg)


def candidate_messages(
    messages: Sequence[BaseMessage],
    index: int,
    original: str,
    request: Request,
    *,
    continuing: bool,
) -> list[BaseMessage]:
    """The conversation as sent for one candidate.

    Args:
        messages: The caller's conversation.
        index: The aligned (last human) message.
        original: Its text, the prompt the search started from.
        request: The candidate's user turn and system instruction.
        continuing: The conversation goes on after tool results: a rewritten turn is not
            put back in history, its instructions go in the system message instead.
    """
    sent = list(messages)
    if request.prompt != original:
        if continuing:
            sent = instructions_in_system(sent, original, request.prompt)
        else:
            sent[index] = with_text(messages[index], request.prompt)
    if request.system is not None:
        sent = with_system(sent, request.system)
    return sent


def with_system(messages: Sequence[BaseMessage], text: str) -> list[BaseMessage]:
    """``messages`` with ``text`` in the system message.

    Providers such as Anthropic take one system message, first. When the conversation opens
    with one, ``text`` is added after the caller's own instructions (a new paragraph, or a
    new text block), so both are sent and the caller's come first; else a system message
    with ``text`` is put first.
    """
    out = list(messages)
    first = out[0] if out else None
    if isinstance(first, SystemMessage) and isinstance(first.content, str):
        out[0] = SystemMessage(content=f"{first.content}\n\n{text}")
    elif isinstance(first, SystemMessage):
        out[0] = SystemMessage(content=[*first.content, {"type": "text", "text": text}])
    else:
        out.insert(0, SystemMessage(content=text))
    return out


def instructions_in_system(
    messages: Sequence[BaseMessage], original: str, candidate: str
) -> list[BaseMessage]:
    """The conversation unchanged but for the candidate's instructions in the system message.

    A candidate that extends the original request (``original`` + instructions, as the
    template optimizer writes them) contributes its added instructions; any other rewrite is
    given whole, as the version of the request to answer.
    """
    added = candidate[len(original) :].strip() if candidate.startswith(original) else ""
    text = (
        f"When you answer the user's request, follow these instructions: {added}"
        if added
        else f"Answer the user's request as this version of it asks: {candidate}"
    )
    return with_system(messages, text)


def with_text(message: BaseMessage, text: str) -> HumanMessage:
    """The human message with its text replaced by ``text``; images and other blocks kept."""
    if isinstance(message.content, str):
        return HumanMessage(content=text)
    blocks: list[Any] = []
    for block in message.content:
        is_text = isinstance(block, str) or (
            isinstance(block, dict) and block.get("type") == "text"
        )
        if not is_text:
            blocks.append(block)
        elif not any(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
            blocks.append({"type": "text", "text": text})  # the first text block carries it all
    return HumanMessage(content=blocks)


def scored_text(message: BaseMessage) -> str:
    """What the reference scorers see: the text, or the tool-call arguments if no text."""
    calls = getattr(message, "tool_calls", None)
    if message.text or not calls:
        return message.text
    return json.dumps([c["args"] for c in calls])


def fixed_chars(model: Runnable[Any, Any], messages: Sequence[BaseMessage], index: int) -> int:
    """An upper bound, in characters (≥ tokens), on what every candidate is sent with besides
    its own text: the other messages with their tool calls, the aligned message's non-text
    blocks, and everything bound to the model (tool schemas, settings) at any layer."""

    def size(value: Any) -> int:
        return len(json.dumps(value, default=str))

    total = 0
    for i, m in enumerate(messages):
        blocks = m.content if isinstance(m.content, list) else []
        non_text = [b for b in blocks if isinstance(b, dict) and b.get("type") != "text"]
        total += len(non_text) * _NON_TEXT_BLOCK_TOKENS
        if i != index:
            total += size(m.content) + size(getattr(m, "tool_calls", None) or []) + 16
        elif non_text:
            total += size(non_text)
    layer = model
    while isinstance(layer, RunnableBinding):
        total += size(layer.kwargs)
        layer = layer.bound
    return total


def as_chunk(message: BaseMessage) -> AIMessageChunk:
    """The chosen answer as a stream's one and last chunk, tool calls included."""
    calls = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
        for i, c in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    return AIMessageChunk(
        content=message.content,
        id=message.id,
        response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None),
        tool_call_chunks=calls,
        chunk_position="last",
    )


def sum_usage(result: SearchResult) -> UsageMetadata | None:
    """Token usage summed over every response call, or None if no provider reported any."""
    usage = result.usage["response"]
    if usage["calls"] == usage["unreported_calls"]:
        return None
    i, o = int(usage["input_tokens"]), int(usage["output_tokens"])
    return UsageMetadata(input_tokens=i, output_tokens=o, total_tokens=i + o)


def announced(result: ChatResult, run_id: Any) -> BaseMessage:
    """The answer with the id LangChain would give it, set now so the one chunk announced to
    stream handlers and the final message are recognised as one message (LangGraph's
    ``stream_mode="messages"`` shows it once)."""
    message = result.generations[0].message
    if message.id is None:
        message.id = f"{LC_ID_PREFIX}-{run_id}-0"
    return message


def answer_chunk(result: ChatResult) -> ChatGenerationChunk:
    """The chosen answer as the run's one stream chunk: what ``astream_events`` shows as
    ``on_chat_model_stream``; no candidate ever streams."""
    return ChatGenerationChunk(message=as_chunk(result.generations[0].message))


def cut_capped(message: BaseMessage) -> BaseMessage:
    """A text answer that a candidate's own output cap cut short, back to its last whole
    sentence (the usage stays what the provider reported: those tokens were paid for)."""
    finish = (message.response_metadata or {}).get("finish_reason")
    if finish != "length" or not isinstance(message.content, str):
        return message
    return message.model_copy(update={"content": cut_to_sentence(message.content)})
