"""An aligned request: the HIA search over the upstream, with the server's heuristic (or, with
``--heuristic learned``, a learned heuristic per user).

The engine's :data:`~hia_chain.search.types.Responder` takes a search
:class:`~hia_chain.search.types.Request`, so the responder here is the request body itself
with the last user message's text swapped for a candidate's: the system prompt, history,
tools and sampling parameters reach the upstream as the client sent them, and the chosen
answer comes back as the upstream's own choice (tool calls intact). Every candidate call is reserved in the request's budget and in the key's pool.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler, AsyncCallbackManager

from hia_chain.budget import BaseBudget, Budget, completion_usage
from hia_chain.context import RunContext
from hia_chain.factory import heuristic, learned_heuristic
from hia_chain.instructions import cut_to_sentence
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.scorers.base import Heuristic
from hia_chain.scorers.learned import LearnedHeuristic, ObservationStore
from hia_chain.scorers.text import BUILTIN_OBJECTIVES, builtin_scorers
from hia_chain.search import HIASearch, SearchResult, SearchSettings
from hia_chain.search.types import Request, Response
from hia_chain.server.config import ServerConfig
from hia_chain.server.errors import APIError
from hia_chain.server.keys import KeySpec
from hia_chain.server.models import ChatCompletion, ChatCompletionRequest, HIAOptions
from hia_chain.server.upstream import Upstream, completion_text, openai_usage
from hia_chain.trace import shape_trace

__all__ = ["Aligner", "Progress", "aligned_message_index"]

Progress = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Receives the search's progress events (``hia_proposed``, ``hia_round``, ...)."""

StoreFactory = Callable[[str], ObservationStore]


def aligned_message_index(body: dict[str, Any]) -> int | None:
    """The message the search rewrites: the last one, if the user wrote it."""
    messages = body["messages"]
    last = len(messages) - 1
    return last if messages[last].get("role") == "user" else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(
        p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"
    )


def _with_text(content: Any, text: str) -> Any:
    """``content`` with its text replaced by ``text``; images and other parts kept."""
    if not isinstance(content, list):
        return text
    out: list[Any] = []
    placed = False
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            if not placed:
                out.append({"type": "text", "text": text})
                placed = True
        else:
            out.append(part)
    return out if placed else [{"type": "text", "text": text}, *out]


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` in the system message: after the caller's own instructions
    when the conversation opens with one (string or parts), else in a new one put first (as
    :class:`~hia_chain.AlignedChatModel` does)."""
    first = messages[0] if messages else {}
    if first.get("role") not in ("system", "developer"):
        return [{"role": "system", "content": text}, *messages]
    content = first.get("content")
    if isinstance(content, list):
        merged: Any = [*content, {"type": "text", "text": text}]
    else:
        merged = f"{content}\n\n{text}" if content else text
    return [{**first, "content": merged}, *messages[1:]]


class _Events(AsyncCallbackHandler):
    """Forwards the search's custom events to a :data:`Progress` callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        await self.progress(name, data)


class Aligner:
    """Runs HIA for requests that carry ``hia``; one instance per worker.

    Args:
        config: The server's defaults and limits.
        upstream: The response model.
        store_factory: Where a user's observations live (default: in this process); e.g.
            Redis, so every worker learns from every worker's answers.
    """

    def __init__(
        self, config: ServerConfig, upstream: Upstream, store_factory: StoreFactory | None = None
    ) -> None:
        self.config = config
        self.upstream = upstream
        self.objectives = list(BUILTIN_OBJECTIVES.values())
        self.scorers = builtin_scorers(list(BUILTIN_OBJECTIVES))
        self.optimizer = TemplateOptimizer()
        self.store_factory = store_factory
        self._shared: Heuristic | None = None
        if config.heuristic_kind != "learned":
            self._shared = heuristic(config.heuristic_kind, self.objectives)
        self._warm: dict[str, Any] | None = None
        if config.heuristic_state:  # read and checked once, before the first request
            self._warm = LearnedHeuristic.load(config.heuristic_state).state_dict()
        self._heuristics: OrderedDict[str, LearnedHeuristic] = OrderedDict()
        self._lock = threading.Lock()

    def heuristic(self, scope: str) -> Heuristic:
        """The server's one heuristic, or the learned heuristic of this user of this key
        (created on first use)."""
        if self._shared is not None:
            return self._shared
        with self._lock:
            found = self._heuristics.get(scope)
            if found is not None:
                self._heuristics.move_to_end(scope)
                return found
        store = self.store_factory(scope) if self.store_factory else None
        made = learned_heuristic(self.objectives, store=store)
        if self._warm is not None and made.n_observations == 0:
            made.load_state_dict(self._warm)
        with self._lock:
            made = self._heuristics.setdefault(scope, made)
            while len(self._heuristics) > self.config.max_users:
                self._heuristics.popitem(last=False)
        return made

    def settings(
        self,
        request: ChatCompletionRequest,
        options: HIAOptions,
        spec: KeySpec | None,
        bound: int | None,
    ) -> tuple[dict[str, float], SearchSettings]:
        """The goal and search settings: the request's, else the server's, within the key's.

        Raises:
            APIError: a setting the key may not use, or above the server's limit.
            ConfigError: a bad goal or setting (a 400 naming ``hia.<field>``).
        """
        cfg = self.config
        goal = options.goal or dict(cfg.goal)
        if not goal:
            names = ", ".join(o.name for o in self.objectives)
            msg = f'`hia.goal` is empty: give a target for at least one of {names}, e.g. {{"verbosity": 1}}.'
            raise APIError(400, msg, param="hia.goal", code="invalid_value")
        budget = options.budget or cfg.budget
        most = min(cfg.max_budget, spec.max_budget or cfg.max_budget) if spec else cfg.max_budget
        if budget > most:
            msg = f"`hia.budget` is {budget}, above the most this key may use per request ({most})."
            raise APIError(400, msg, param="hia.budget", code="invalid_value")
        search = options.search or cfg.search
        if spec is not None and not spec.allows(search):
            msg = f"This key may not use `hia.search` = {search!r}; allowed: {spec.searches}."
            raise APIError(403, msg, type="permission_error", param="hia.search")
        if (request.n or 1) != 1:
            raise APIError(
                400,
                "`n` must be 1 (or absent) with `hia`: the search returns one answer.",
                param="n",
            )
        settings = SearchSettings(
            search=search,
            filter=options.filter or cfg.filter,
            budget=budget,
            candidates_per_round=options.candidates_per_round,
            beam_width=options.beam_width or 2,
            reward=options.reward or cfg.reward,
            seed=request.seed,
            max_retries=cfg.max_retries,
            max_tokens=bound,
            exploration=options.exploration or 0.0,
            timeout=cfg.upstream_timeout,
            deadline=options.deadline,
        )
        return goal, settings

    async def run(
        self,
        request: ChatCompletionRequest,
        body: dict[str, Any],
        index: int,
        goal: dict[str, float],
        settings: SearchSettings,
        *,
        pool: BaseBudget | None,
        scope: str,
        trace: str = "full",
        progress: Progress | None = None,
    ) -> tuple[ChatCompletion, SearchResult]:
        """Search for the best-aligned answer to ``body`` and return it as a chat completion.

        Raises:
            ConfigError, BudgetExceededError, TimeoutError, openai errors: see
                :func:`hia_chain.server.errors.from_exception` for how each is answered.
        """
        message = body["messages"][index]
        prompt = _text_of(message.get("content"))
        if not prompt.strip():
            raise APIError(400, "The last user message has no text to align.", param="messages")
        fixed = copy.deepcopy(body)
        fixed["messages"][index] = {**message, "content": _with_text(message.get("content"), "")}
        context = RunContext(budget=Budget(), fixed_input_chars=len(json.dumps(fixed)))
        run = None
        if progress is not None:
            events = _Events(progress)
            manager = AsyncCallbackManager(handlers=[events], inheritable_handlers=[events])
            run = await manager.on_chain_start(
                {"name": "hia_server"}, {"prompt": prompt}, name="hia_server"
            )
            context.run_manager = run

        async def respond(request: Request) -> Response:
            sent = dict(body)
            messages = list(body["messages"])
            content = _with_text(message.get("content"), request.prompt)
            messages[index] = {**message, "content": content}
            sent["messages"] = (
                messages if request.system is None else _with_system(messages, request.system)
            )
            if request.max_tokens is not None:  # the search keeps it within the request's bound
                cap = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
                sent[cap] = request.max_tokens
            completion = await self.upstream.complete(sent)
            if request.max_tokens is not None:
                completion = _cut_capped(completion)
            input_tokens, output_tokens = completion_usage(completion)
            return Response(
                text=completion_text(completion),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                message=completion,
            )

        search = HIASearch(self.objectives, self.scorers, self.optimizer, self.heuristic(scope))
        result = await search.run(prompt, goal, respond, settings, shared=pool, context=context)
        if run is not None:
            await run.on_chain_end({"best": result.best.id})
        return self._completion(result, trace), result

    def _completion(self, result: SearchResult, trace: str) -> ChatCompletion:
        best = result.best.response
        assert best is not None  # noqa: S101 - the engine only chooses measured candidates
        upstream: dict[str, Any] = best.message
        choice = {**upstream["choices"][0], "index": 0}
        usage = result.usage["response"]
        summed = None
        if usage["calls"] != usage["unreported_calls"]:
            summed = openai_usage(int(usage["input_tokens"]), int(usage["output_tokens"]))
        record = shape_trace(result.trace(), trace)
        return ChatCompletion(
            id=f"chatcmpl-hia-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            model=self.config.model_name,
            choices=[choice],
            usage=summed,  # type: ignore[arg-type]
            system_fingerprint=upstream.get("system_fingerprint"),
            hia=record,
        )


def _cut_capped(completion: dict[str, Any]) -> dict[str, Any]:
    """A completion that a candidate's own output cap cut short, back to its last whole
    sentence (see :func:`~hia_chain.instructions.cut_to_sentence`); usage unchanged."""
    choice = completion["choices"][0]
    content = (choice.get("message") or {}).get("content")
    if choice.get("finish_reason") != "length" or not isinstance(content, str):
        return completion
    message = {**choice["message"], "content": cut_to_sentence(content)}
    return {**completion, "choices": [{**choice, "message": message}, *completion["choices"][1:]]}
