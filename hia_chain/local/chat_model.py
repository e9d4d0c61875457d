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
from dataclasses import dataclass, replace
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
    """What requests must share to be decoded in one batch: sampling, stop strings and seed.

    Not the length: each :class:`_Job` keeps its own ``max_tokens`` and its row stops there, so
    the capped and uncapped candidates of one HIA round still share a forward pass.
    """

    settings: DecodeSettings
    """The call's sampling; ``max_tokens`` is always the model's own (see ``_Job``)."""
    stop: tuple[str, ...]
    seed: int | None


@dataclass(frozen=True)
class _Job:
    """One request of a batch: its conversation and its own token cap."""

    messages: list[BaseMessage]
    max_tokens: int


class LocalChatModel(BaseLocalChatModel):
    """A chat model over local weights: the embedded SmolLM2 by default, or any folder.

    Concurrent calls are batched automatically: requests that arrive within ``batch_window``
    seconds of each other (``abatch`` or ``batch``, a round of HIA calls, a draft batch) are
    padded on the left and decoded together, with each request's callbacks still firing on its
    own. Requests with the same sampling settings, stop strings and seed share one batch, each
    row stopping at its own ``max_tokens``.

    A seed fixes an answer only together with the batch it lands in, and which concurrent
    requests share that batch depends on timing (who arrives within ``batch_window``). The
    rows of a batch draw from one generator, so a row's random numbers depend on how many rows
    the batch has, in which order, and for how many steps it runs; and left padding to the
    longest prompt of the batch changes the logits in their last bits, which can flip a close
    sample (or even an argmax tie). A seeded call made alone (``invoke`` with no other call in
    flight, or ``stream``) repeats exactly; the same seed inside a ``batch`` or a round of
    concurrent calls may give another answer when the company changes.

    A stream cannot join a batch (it decodes one token at a time for its reader), but it never
    decodes beside one either: it takes the batcher's engine lock for each token and releases
    it while the reader handles the piece. So a slow reader, or one that calls this model
    between pieces, blocks nothing; the cost is that a stream started while a batch runs waits
    for that batch, and its next token may wait for a batch that started in between.

    Example:
        .. code-block:: python

            from hia_chain.local import LocalChatModel

            llm = LocalChatModel(max_tokens=64)            # embedded SmolLM2-135M-Instruct
            llm.invoke("Name three fruits.").content
    """

    batch_window: float = 0.01
    """Seconds the first of several concurrent calls waits for others to batch with."""

    _batcher: MicroBatcher[_Call, _Job, Generated] = PrivateAttr()

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

    def _call(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[_Call, _Job]:
        """The call's batch key and its job (its own ``max_tokens`` kept out of the key)."""
        settings = self.decode_settings(**kwargs)
        key = _Call(
            replace(settings, max_tokens=self.max_tokens),
            self._stop(stop),
            kwargs.get("seed", self.seed),
        )
        return key, _Job(messages, settings.max_tokens)

    def _decoder(self, call: _Call, jobs: list[_Job]) -> TextDecoder:
        model, tok = self.load_weights()
        prompts = [chat_ids(tok, conversation(j.messages)) for j in jobs]
        generator, _ = seeded_generator(model_device(model), call.seed)
        return TextDecoder(
            model,
            tok,
            prompts,
            call.settings,
            max_tokens=[j.max_tokens for j in jobs],
            stop=call.stop,
            generator=generator,
        )

    def _run_batch(self, call: _Call, jobs: list[_Job]) -> list[Generated]:
        return self._decoder(call, jobs).run()

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
        call, job = self._call(messages, stop, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # `batch` calls from worker threads join this one
            return self._result(self._batcher.submit(call, job, window=self.batch_window))
        # on an event loop's thread: waiting on a batch led there would deadlock
        return self._result(self._batcher.run_alone(call, job))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, job = self._call(messages, stop, kwargs)
        return self._result(await self._batcher.asubmit(call, job, window=self.batch_window))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Text as it is decoded; usage and finish reason in the last chunk.

        Joined, the chunks equal what ``invoke`` alone returns for the same seed: text a later
        token could change (a possible stop string's start, ...) is held back until settled.
        The prompt's forward pass and each token's run under the batcher's engine lock, never
        beside a batch; the lock is free while this generator waits for its reader.
        """
        call, job = self._call(messages, stop, kwargs)
        with self._batcher.exclusive():
            decoder = self._decoder(call, [job])
        for piece in stream_text(decoder, guard=self._batcher.exclusive):
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
