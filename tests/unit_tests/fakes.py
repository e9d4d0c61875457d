"""Test doubles shared by the unit tests (no network, no weights).

The fake chat model is the library's own :class:`hia_chain.testing.FakeChatModel`
(re-exported here as ``CountingChatModel`` for the tests that import it by that name); this
module adds what only tests need: stand-in errors, a scorer with a known formula and a
callback that records chat-model starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from hia_chain.context import RunContext
from hia_chain.scorers.base import ReferenceScorer
from hia_chain.testing import FakeChatModel as CountingChatModel
from hia_chain.testing import instruction_following as instruction_following

__all__ = [
    "ChatStartRecorder",
    "CountingChatModel",
    "FatalError",
    "TransientError",
    "WordCountScorer",
    "instruction_following",
]


class TransientError(ConnectionError):
    """Stands in for a dropped connection."""


class FatalError(RuntimeError):
    """Stands in for an authentication error: never retried."""


class WordCountScorer(ReferenceScorer):
    """Verbosity as words / 25, clipped to 0–4: a stand-in with a known formula."""

    objectives = ("verbosity",)

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        return [{"verbosity": min(4.0, len(r.split()) / 25)} for r in responses]


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
