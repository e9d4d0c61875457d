"""LocalChatModel: a LangChain chat model over a local transformers causal LM.

Why not ``langchain-huggingface``'s ``ChatHuggingFace``: it wraps a text-generation pipeline
one prompt at a time, reports no ``usage_metadata``, and knows nothing of the embedded GGUF
model. HIA needs the opposite: many short generations (drafts, candidates) batched into one
forward pass, real token counts for budgets, and zero-setup loading of the embedded model.

Concurrent calls are batched automatically: requests that arrive within a few milliseconds
of each other (``abatch`` or ``batch``, a round of HIA calls, a draft batch) are padded on the
left and run as one ``generate`` call, with each request's callbacks still firing on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from hia_chain.errors import ConfigError

__all__ = ["Generated", "LocalChatModel", "conversation", "local_ls_params", "resolve_weights"]

logger = logging.getLogger(__name__)

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as chat-template dicts."""
    return [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]


def resolve_weights(hf_model: Any, tokenizer: Any, model_path: str | None) -> tuple[Any, Any]:
    """The injected model and tokenizer, the missing ones loaded from ``model_path`` (or the
    embedded model), once per process."""
    if hf_model is None or tokenizer is None:
        from hia_chain.local.embedded import load_embedded

        model, tok = load_embedded(Path(model_path) if model_path else None)
        hf_model = model if hf_model is None else hf_model
        tokenizer = tok if tokenizer is None else tokenizer
    return hf_model, tokenizer


def local_ls_params(model: Any, stop: list[str] | None, kwargs: dict[str, Any]) -> LangSmithParams:
    """LangSmith params of a local chat model (it runs the one set of weights it holds)."""
    return LangSmithParams(
        ls_provider="hia_local",
        ls_model_name=model.model_name,
        ls_model_type="chat",
        ls_temperature=kwargs.get("temperature", model.temperature),
        ls_max_tokens=kwargs.get("max_tokens", model.max_tokens),
        ls_stop=stop or model.stop,
    )


@dataclass(frozen=True)
class Generated:
    """One generation with its real token counts."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class _Params:
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None


class LocalChatModel(BaseChatModel):
    """A chat model over local weights: the embedded SmolLM2 by default, or any folder.

    Example:
        .. code-block:: python

            from hia_chain.local import LocalChatModel

            llm = LocalChatModel(max_tokens=64)            # embedded SmolLM2-135M-Instruct
            llm.invoke("Name three fruits.").content
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model_path: str | None = None
    """A transformers model folder; default: the embedded model (converted on first use)."""
    model_name: str = "SmolLM2-135M-Instruct"
    temperature: float = 0.7
    """0 decodes greedily."""
    top_p: float = 1.0
    max_tokens: int = 256
    stop: list[str] | None = None
    seed: int | None = None
    batch_window: float = 0.01
    """Seconds the first of several concurrent calls waits for others to batch with."""
    hf_model: Any = Field(default=None, exclude=True)
    """An already-loaded model (tests inject tiny ones); loaded lazily otherwise."""
    tokenizer: Any = Field(default=None, exclude=True)

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _pending: list[tuple[list[BaseMessage], _Params, concurrent.futures.Future[Generated]]] = (
        PrivateAttr(default_factory=list)
    )
    _pending_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _leader: bool = PrivateAttr(default=False)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if self.temperature < 0:
            raise ConfigError(f"`temperature` must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"`top_p` must be in (0, 1], got {self.top_p}.")
        if self.max_tokens < 1:
            raise ConfigError(f"`max_tokens` must be >= 1, got {self.max_tokens}.")

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

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return local_ls_params(self, stop, kwargs)

    # -- model --------------------------------------------------------------------------

    def _resolve(self) -> tuple[Any, Any]:
        self.hf_model, self.tokenizer = resolve_weights(
            self.hf_model, self.tokenizer, self.model_path
        )
        return self.hf_model, self.tokenizer

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> _Params:
        return _Params(
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            max_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
            stop=tuple(stop or self.stop or ()),
            seed=kwargs.get("seed", self.seed),
        )

    def _encode(self, conversations: Sequence[Sequence[BaseMessage]]) -> Any:
        _, tok = self._resolve()
        texts = [
            tok.apply_chat_template(
                conversation(msgs),
                tokenize=False,
                add_generation_prompt=True,
            )
            for msgs in conversations
        ]
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def _generate_ids(self, enc: Any, p: _Params, **extra: Any) -> Any:
        """``generate`` on an encoded batch with these settings (the caller holds the lock)."""
        import torch

        model, tok = self._resolve()
        if p.seed is not None:
            torch.manual_seed(p.seed)
        sample = p.temperature > 0
        with torch.no_grad():
            return model.generate(
                **enc,
                max_new_tokens=p.max_tokens,
                do_sample=sample,
                temperature=p.temperature if sample else None,
                top_p=p.top_p if sample else None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                stop_strings=list(p.stop) or None,
                tokenizer=tok if p.stop else None,
                **extra,
            )

    def generate_texts(
        self,
        conversations: Sequence[Sequence[BaseMessage]],
        stop: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Generated]:
        """Generate for many conversations in one padded forward pass (blocking)."""
        params = self._params(list(stop) if stop else None, kwargs)
        return self._run_batch(list(conversations), params)

    def _run_batch(self, conversations: list[Sequence[BaseMessage]], p: _Params) -> list[Generated]:
        _, tok = self._resolve()
        with self._lock:
            enc = self._encode(conversations)
            out = self._generate_ids(enc, p)
        results = []
        width = enc["input_ids"].shape[1]
        eos = {tok.eos_token_id, tok.pad_token_id}
        for row in range(len(conversations)):
            new = out[row, width:].tolist()
            n = next((i for i, t in enumerate(new) if t in eos), None)
            ids = new if n is None else new[:n]
            text = tok.decode(ids, skip_special_tokens=True)
            reason = "stop" if n is not None else "length"
            for s in p.stop:
                if s in text:
                    text, reason = text[: text.index(s)], "stop"
            results.append(
                Generated(
                    text, int(enc["attention_mask"][row].sum()), len(ids) + (n is not None), reason
                )
            )
        return results

    # -- LangChain paths ----------------------------------------------------------------

    def _result(self, g: Generated) -> ChatResult:
        message = AIMessage(
            content=g.text,
            usage_metadata=UsageMetadata(
                input_tokens=g.input_tokens,
                output_tokens=g.output_tokens,
                total_tokens=g.input_tokens + g.output_tokens,
            ),
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": g.finish_reason,
                "model_provider": "hia_local",
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _enqueue(
        self, messages: list[BaseMessage], params: _Params
    ) -> tuple[concurrent.futures.Future[Generated], bool]:
        """Queue one request; the first of a batch (True) must run it after the window."""
        future: concurrent.futures.Future[Generated] = concurrent.futures.Future()
        with self._pending_lock:
            self._pending.append((messages, params, future))
            lead = not self._leader
            self._leader = True
        return future, lead

    def _take_batch(
        self,
    ) -> list[tuple[list[BaseMessage], _Params, concurrent.futures.Future[Generated]]]:
        with self._pending_lock:
            batch, self._pending, self._leader = self._pending, [], False
        return batch

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._params(stop, kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # called on an event loop's thread: waiting on a batch led there would deadlock
            return self._result(self._run_batch([messages], params)[0])
        future, lead = self._enqueue(messages, params)
        if lead:  # `batch` calls from worker threads join this one
            time.sleep(self.batch_window)
            self._execute(self._take_batch())
        return self._result(future.result())

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        future, lead = self._enqueue(messages, self._params(stop, kwargs))
        if lead:
            # The first caller waits a moment for others, then runs everyone's batch; shielded
            # so a cancelled leader cannot strand the requests it collected.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.batch_window)
                await anyio.to_thread.run_sync(self._execute, self._take_batch())
        return self._result(await asyncio.wrap_future(future))

    def _execute(
        self, batch: list[tuple[list[BaseMessage], _Params, concurrent.futures.Future[Generated]]]
    ) -> None:
        groups: dict[
            _Params, list[tuple[list[BaseMessage], concurrent.futures.Future[Generated]]]
        ] = {}
        for messages, params, fut in batch:
            groups.setdefault(params, []).append((messages, fut))
        for params, items in groups.items():
            try:
                outs = self._run_batch([m for m, _ in items], params)
            except Exception as exc:
                for _, fut in items:
                    fut.set_exception(exc)
            else:
                for (_, fut), g in zip(items, outs, strict=True):
                    fut.set_result(g)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Token-by-token text as it is generated; usage and finish reason in the last chunk."""
        from transformers import TextIteratorStreamer

        _, tok = self._resolve()
        p = self._params(stop, kwargs)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        result: list[Generated] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with self._lock:
                    enc = self._encode([messages])
                    out = self._generate_ids(enc, p, streamer=streamer)
                new = out[0, enc["input_ids"].shape[1] :].tolist()
                ended = tok.eos_token_id in new
                n = new.index(tok.eos_token_id) + 1 if ended else len(new)
                reason = "stop" if ended else "length"
                result.append(Generated("", int(enc["input_ids"].shape[1]), n, reason))
            except BaseException as exc:  # hand it to the consumer; never leave it waiting
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text, cut_short = "", False
        for piece in streamer:
            if p.stop and any(s in text + piece for s in p.stop):
                cut = min((text + piece).index(s) for s in p.stop if s in text + piece)
                piece = (text + piece)[len(text) : cut]
                if piece:
                    yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
                cut_short = True
                break
            text += piece
            if piece:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        if cut_short:  # drain so the worker can finish (the streamer ends exactly once)
            for _ in streamer:
                pass
        thread.join()
        if errors:
            raise errors[0]
        g = result[0]
        if cut_short:
            g = Generated(g.text, g.input_tokens, g.output_tokens, "stop")
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                chunk_position="last",
                usage_metadata=UsageMetadata(
                    input_tokens=g.input_tokens,
                    output_tokens=g.output_tokens,
                    total_tokens=g.input_tokens + g.output_tokens,
                ),
                response_metadata={"model_name": self.model_name, "finish_reason": g.finish_reason},
            )
        )
