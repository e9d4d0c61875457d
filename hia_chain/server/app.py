"""The FastAPI app: routes, authentication, and the dispatch of each chat completion.

Why FastAPI (over bare Starlette): the request and response models are declared once in
pydantic and give both validation and an OpenAPI schema at ``/docs`` for free; it is already
in the dependency closure of ``transformers[serving]``; and it is Starlette underneath, so
streaming and the exception handlers are Starlette's. Bodies are parsed by hand (not by
FastAPI's signature injection) so that every validation error is OpenAI's error JSON with
the bad field in ``param``, not FastAPI's 422 shape.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hia_chain.errors import BudgetExceededError
from hia_chain.server.align import Aligner, Progress, aligned_message_index
from hia_chain.server.budgets import KeyBudgets
from hia_chain.server.config import ENV_CONFIG, ServerConfig, upstream_api_key
from hia_chain.server.errors import APIError, from_exception, from_validation
from hia_chain.server.keys import KeyRing, KeySpec
from hia_chain.server.metrics import Metrics
from hia_chain.server.models import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from hia_chain.server.passthrough import StreamedCall, complete_once
from hia_chain.server.streaming import aligned_stream, relay_stream
from hia_chain.server.upstream import LocalUpstream, OpenAIUpstream, Upstream

__all__ = ["app_from_env", "create_app"]

logger = logging.getLogger("hia_chain.server")

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class _State:
    """Everything one worker's routes share."""

    config: ServerConfig
    keys: KeyRing | None
    budgets: KeyBudgets
    upstream: Upstream
    aligner: Aligner
    metrics: Metrics

    def authenticate(self, request: Request) -> KeySpec | None:
        """The caller's key (``None`` when the server has no keys file).

        Raises:
            APIError: 401 for a missing or unknown key (the key itself is never echoed).
        """
        if self.keys is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        spec = self.keys.lookup(token.strip()) if scheme.lower() == "bearer" else None
        if spec is None:
            msg = (
                "Incorrect or missing API key: send `Authorization: Bearer <key>` with a key "
                "from this server's keys file."
            )
            raise APIError(401, msg, code="invalid_api_key")
        request.state.key_name = spec.name
        return spec


def _store_factory(config: ServerConfig) -> Any:
    """Per-user observation stores in Redis, so every worker learns from every answer."""
    if config.redis_url is None:
        return None
    from hia_chain import RedisObservationStore
    from hia_chain.stores import observation_key

    url, model = config.redis_url, config.model_name
    return lambda scope: RedisObservationStore(url, observation_key(scope, model))


def create_app(config: ServerConfig) -> FastAPI:
    """The ASGI app of ``hia-chain serve`` for ``config`` (one per worker).

    Raises:
        ConfigError: the keys file is unreadable or invalid.
    """
    keys = KeyRing.load(config.keys_path) if config.keys_path else None
    budgets = KeyBudgets(keys or KeyRing([]), config.redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstream: Upstream
        if config.upstream_base_url and config.upstream_model:
            upstream = OpenAIUpstream(
                config.upstream_base_url,
                config.upstream_model,
                upstream_api_key(),
                config.upstream_timeout,
            )
        else:
            upstream = LocalUpstream(config.max_tokens)
        await upstream.start()
        aligner = Aligner(config, upstream, _store_factory(config))
        app.state.hia = _State(config, keys, budgets, upstream, aligner, Metrics())
        logger.info("hia-chain serve: %s at %s", upstream.model, upstream.where)
        try:
            yield
        finally:
            await upstream.aclose()
            await budgets.aclose()

    app = FastAPI(
        title="hia-chain serve",
        summary="An OpenAI-compatible server that aligns every request (HIA) within hard budgets.",
        lifespan=lifespan,
    )
    app.add_middleware(_Timing)
    _handlers(app)
    _routes(app)
    return app


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker, from the configuration in ``$HIA_SERVER_CONFIG``."""
    return create_app(ServerConfig.model_validate_json(os.environ[ENV_CONFIG]))


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        err = APIError(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", type=kind
        )
        return _error_response(err)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(from_exception(exc))


def _routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        state: _State = request.app.state.hia
        return {"status": "ok", "model": state.upstream.model, "upstream": state.upstream.where}

    @app.get("/v1/models", response_model=ModelList)
    async def models(request: Request) -> ModelList:
        state: _State = request.app.state.hia
        state.authenticate(request)
        return ModelList(data=[ModelCard(id=state.upstream.model)])

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        state: _State = request.app.state.hia
        state.authenticate(request)
        specs = state.keys.specs if state.keys else []
        left = {s.name: await state.budgets.calls_left(s) for s in specs}
        return state.metrics.render(left)

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": ChatCompletionRequest.model_json_schema()}
                },
            }
        },
    )
    async def chat(request: Request) -> Response:
        state: _State = request.app.state.hia
        spec = state.authenticate(request)
        data = _json_body(await request.body())
        try:
            parsed = ChatCompletionRequest.model_validate(data)
        except ValidationError as exc:
            raise from_validation(exc) from None
        retry = KeyBudgets.retry_after(spec) if spec else None
        try:
            return await _dispatch(state, request, spec, parsed, data)
        except APIError:
            raise
        except Exception as exc:
            raise from_exception(exc, retry_after=retry) from exc


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"The request body is not valid JSON: {exc}."
        raise APIError(400, msg, code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


async def _dispatch(
    state: _State,
    request: Request,
    spec: KeySpec | None,
    parsed: ChatCompletionRequest,
    data: dict[str, Any],
) -> Response:
    config, upstream = state.config, state.upstream
    if parsed.model not in (upstream.model, "hia"):
        msg = f"The model {parsed.model!r} does not exist here; this server serves {upstream.model!r}."
        raise APIError(
            404, msg, type="invalid_request_error", param="model", code="model_not_found"
        )
    body = {k: v for k, v in data.items() if k not in ("hia", "stream", "stream_options")}
    body["model"] = upstream.model
    pool = state.budgets.pool(spec) if spec else None
    bound = parsed.output_bound()
    if bound is None and (
        isinstance(upstream, LocalUpstream)
        or (pool is not None and pool.needs_token_bound("response"))
    ):
        bound = config.max_tokens
        body["max_tokens"] = bound  # the bound every call reserves is the one the model gets
    if pool is not None and await pool.aremaining_calls("response") == 0:
        raise BudgetExceededError("no response calls are left this period")
    key = spec.name if spec else "-"
    index = aligned_message_index(body) if parsed.hia is not None else None
    request.state.kind = "aligned" if index is not None else "passthrough"
    include_usage = bool((parsed.stream_options or {}).get("include_usage"))

    if index is None or parsed.hia is None:
        if parsed.stream:
            if include_usage:
                body["stream_options"] = {"include_usage": True}
            streamed = StreamedCall(
                upstream, body, pool, timeout=config.upstream_timeout, max_tokens=bound
            )
            await streamed.open()
            state.metrics.upstream_calls(key, 1)
            return _ClosingStreamingResponse(
                relay_stream(streamed.__aiter__()),
                on_close=streamed.aclose,
                media_type="text/event-stream",
                headers=_SSE_HEADERS,
            )
        completion = await complete_once(
            upstream, body, pool, timeout=config.upstream_timeout, max_tokens=bound
        )
        state.metrics.upstream_calls(key, 1)
        if parsed.hia is not None:  # hia given, but the last message is not the user's
            completion["hia"] = {
                "passthrough": "the last message is not the user's: passed through at one call",
                "calls": 1,
            }
        return JSONResponse(completion)

    options = parsed.hia
    goal, settings = state.aligner.settings(parsed, options, spec, bound)
    scope = f"{key}:{parsed.user or ''}"

    async def run(progress: Progress | None = None) -> ChatCompletion:
        completion, result = await state.aligner.run(
            parsed,
            body,
            index,
            goal,
            settings,
            pool=pool,
            scope=scope,
            trace=options.trace,
            progress=progress,
        )
        state.metrics.upstream_calls(key, result.calls)
        request.state.calls = result.calls
        return completion

    if parsed.stream:
        return StreamingResponse(
            aligned_stream(run, include_usage=include_usage),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    aligned = await run()
    return JSONResponse(aligned.model_dump(exclude_none=True))


class _Timing:
    """ASGI middleware: request metrics and one log line per chat completion (key names
    only: an API key is never logged)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            info = scope.get("state") or {}
            app_state = scope["app"].state if "app" in scope else None
            hia = getattr(app_state, "hia", None)
            if hia is not None:
                hia.metrics.request(info.get("kind", "rejected"), status, seconds)
            logger.info(
                "chat key=%s kind=%s status=%d calls=%s %.1f ms",
                info.get("key_name", "-"),
                info.get("kind", "rejected"),
                status,
                info.get("calls", "-"),
                seconds * 1000,
            )


class _ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always runs ``on_close``, even when the client disconnects
    before its body starts (Starlette then never iterates the body, nor runs background tasks)."""

    def __init__(self, *args: Any, on_close: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
