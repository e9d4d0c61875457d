"""LocalChatModel: a LangChain chat model over a local transformers causal LM.

Why not ``langchain-huggingface``'s ``ChatHuggingFace``: it wraps a text-generation pipeline
one prompt at a time, reports no ``usage_metadata``, and knows nothing of the embedded GGUF
model. HIA needs the opposite: many short generations (drafts, candidates) batched into one
forward pass, real token counts for budgets, and zero-setup loading of the embedded model.

The jobs are split: this class is the chat surface; the weights load through
:meth:`~hia_chain.local.base.BaseLocalChatModel.load_weights`; concurrent calls are batched by
a :class:`~hia_chain.local.batcher.MicroBatcher`; the text is decoded by
:class:`~hia_chain.local.generation.TextDecoder` with a per-call ``torch.Generator`` (see that
module for why not ``model.generate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from hia_chain.local.base import BaseLocalChatModel, conversation, usage
from hia_chain.local.batcher import MicroBatcher
from hia_chain.local.decoding import seeded_generator
from hia_chain.local.generation import Generated, TextDecoder, stream_text
from hia_chain.local.hf_adapter import chat_ids, model_device
from hia_chain.local.settings import DecodeSettings

__all__ = ["LocalChatModel"]


@dataclass(frozen=True)
class _Call:
    """What requests must share to be decoded in one batch."""

    settings: DecodeSettings
    stop: tuple[str, ...]
    seed: int | None


class LocalChatModel(BaseLocalChatModel):
    """A chat model over local weights: the embedded SmolLM2 by default, or any folder.

    Concurrent calls are batched automatically: requests that arrive within ``batch_window``
    seconds of each other (``abatch`` or ``batch``, a round of HIA calls, a draft batch) are
    padded on the left and decoded together, with each request's callbacks still firing on its
    own. Requests with the same settings and seed share one batch and one generator, so a
    seeded answer repeats exactly when the batch does.

    Example:
        .. code-block:: python

            from hia_chain.local import LocalChatModel

            llm = LocalChatModel(max_tokens=64)            # embedded SmolLM2-135M-Instruct
            llm.invoke("Name three fruits.").content
    """

    batch_window: float = 0.01
    """Seconds the first of several concurrent calls waits for others to batch with."""

    _batcher: MicroBatcher[_Call, list[BaseMessage], Generated] = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self.decode_settings()  # checked here so a bad field raises ConfigError at once
        self._batcher = MicroBatcher(self._run_batch)

    @property
    def _llm_type(self) -> str:
        return "hia-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_path": self.model_path,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }

    def decode_settings(self, **overrides: Any) -> DecodeSettings:
        """This model's sampling settings, with a call's ``temperature``, ``top_p`` or
        ``max_tokens`` instead where given.

        Raises:
            ConfigError: a setting is out of range.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        return DecodeSettings(
            max_tokens=given.get("max_tokens", self.max_tokens),
            temperature=given.get("temperature", self.temperature),
            top_p=given.get("top_p", self.top_p),
        )

    def _call(self, stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        seed = kwargs.get("seed", self.seed)
        return _Call(self.decode_settings(**kwargs), self._stop(stop), seed)

    def _decoder(self, conversations: list[list[BaseMessage]], call: _Call) -> TextDecoder:
        model, tok = self.load_weights()
        prompts = [chat_ids(tok, conversation(m)) for m in conversations]
        generator, _ = seeded_generator(model_device(model), call.seed)
        return TextDecoder(model, tok, prompts, call.settings, stop=call.stop, generator=generator)

    def _run_batch(self, call: _Call, conversations: list[list[BaseMessage]]) -> list[Generated]:
        return self._decoder(conversations, call).run()

    def _result(self, g: Generated) -> ChatResult:
        message = AIMessage(
            content=g.text,
            usage_metadata=usage(g.input_tokens, g.output_tokens),
            response_metadata=self._response_metadata(g.finish_reason),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    # -- LangChain paths ----------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(stop, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # `batch` calls from worker threads join this one
            return self._result(self._batcher.submit(call, messages, window=self.batch_window))
        # on an event loop's thread: waiting on a batch led there would deadlock
        return self._result(self._batcher.run_alone(call, messages))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(stop, kwargs)
        return self._result(await self._batcher.asubmit(call, messages, window=self.batch_window))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Text as it is decoded; usage and finish reason in the last chunk.

        Joined, the chunks equal what ``invoke`` returns for the same seed: text that may
        start a stop string is held back until the next token settles it.
        """
        decoder = self._decoder([messages], self._call(stop, kwargs))
        for piece in stream_text(decoder):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        g = decoder.result(0)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                chunk_position="last",
                usage_metadata=usage(g.input_tokens, g.output_tokens),
                response_metadata=self._response_metadata(g.finish_reason),
            )
        )
