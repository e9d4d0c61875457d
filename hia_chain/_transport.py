"""Seeing, at the HTTP transport, whether a call's request left the process.

For OpenAI-compatible clients (``ChatOpenAI`` and anything else holding an ``openai`` SDK
client as ``root_client``/``root_async_client``) the package calls a *copy* of the model
whose SDK client has its own retries turned off (the call path's tenacity retries take over,
each reserved and paid) and whose httpx client wraps the original transport (same connection
pool, same limits). The wrapper hangs an httpcore ``trace`` hook on each request: when the
request's headers start going out, the current call (a context variable set by the call
path) is marked as written. A call cancelled or timed out before that never reached the
provider and is given back to the budget.

Every other model is opaque: its call counts from the moment it starts.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
from langchain_core.runnables import Runnable, RunnableBinding, RunnableSequence

__all__ = ["CallState", "current", "in_thread", "instrumented", "mark_exact", "tracking"]

logger = logging.getLogger(__name__)


@dataclass
class CallState:
    """What the transport saw of one attempt of one call."""

    exact: bool = False
    """The model was called through an instrumented client: ``written`` is to be trusted."""
    written: int = 0
    """Requests whose headers started going out (each one the provider may have seen)."""
    detached: bool = False
    """The call runs on a worker thread that a cancellation cannot stop."""

    @property
    def may_have_reached(self) -> bool:
        """Whether the provider may have received this call."""
        return self.written > 0 or self.detached or not self.exact


_CURRENT: contextvars.ContextVar[CallState | None] = contextvars.ContextVar(
    "hia_call_state", default=None
)


def current() -> CallState | None:
    return _CURRENT.get()


@contextlib.contextmanager
def tracking() -> Iterator[CallState]:
    """Track one attempt: the transport reports into the state this yields."""
    state = CallState()
    token = _CURRENT.set(state)
    try:
        yield state
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def in_thread() -> Iterator[None]:
    """Mark the current attempt as running on a worker thread while it does.

    A cancellation abandons the thread, which may still send the request afterwards, so the
    attempt stays marked; a result or an error means the thread is done.
    """
    state = _CURRENT.get()
    if state is not None:
        state.detached = True
    try:
        yield
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException:
        if state is not None:
            state.detached = False
        raise
    if state is not None:
        state.detached = False


def mark_exact(model: Runnable[Any, Any]) -> None:
    """Note that the current attempt calls ``model``; exact if it is instrumented."""
    state = _CURRENT.get()
    if state is not None:
        state.exact = _is_instrumented(model)


def _written(name: str) -> None:
    if name.endswith("send_request_headers.started"):
        state = _CURRENT.get()
        if state is not None:
            state.written += 1


def _chain_trace(old: Any, is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def atrace(name: str, info: dict[str, Any]) -> None:
            _written(name)
            if old is not None:
                await old(name, info)

        return atrace

    def trace(name: str, info: dict[str, Any]) -> None:
        _written(name)
        if old is not None:
            old(name, info)

    return trace


def _honours_trace(transport: Any) -> bool:
    """Whether ``transport`` is httpx's own (an httpcore pool, which calls the ``trace`` hook);
    a mock, ASGI/WSGI or custom transport may deliver a request without reporting it."""
    return type(transport).__name__ in ("HTTPTransport", "AsyncHTTPTransport") and hasattr(
        transport, "_pool"
    )


class _AsyncCounting:
    """Duck-typed async transport (httpx or httpx2) that reports written requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.traced = _honours_trace(inner)

    async def handle_async_request(self, request: Any) -> Any:
        if not self.traced:  # a transport that reports nothing: count it as written now
            _written("send_request_headers.started")
        request.extensions = {
            **request.extensions,
            "trace": _chain_trace(request.extensions.get("trace"), True),
        }
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """The original client owns the connection pool; closing a copy leaves it open."""

    async def __aenter__(self) -> _AsyncCounting:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


class _SyncCounting:
    """Duck-typed sync transport (httpx or httpx2) that reports written requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.traced = _honours_trace(inner)

    def handle_request(self, request: Any) -> Any:
        if not self.traced:  # a transport that reports nothing: count it as written now
            _written("send_request_headers.started")
        request.extensions = {
            **request.extensions,
            "trace": _chain_trace(request.extensions.get("trace"), False),
        }
        return self.inner.handle_request(request)

    def close(self) -> None:
        """The original client owns the connection pool; closing a copy leaves it open."""

    def __enter__(self) -> _SyncCounting:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _counting_http_client(client: Any, wrapper: type) -> Any:
    """A shallow copy of an httpx client whose transports report written requests."""
    out = copy.copy(client)
    out._transport = wrapper(client._transport)
    out._mounts = {
        pattern: (None if t is None else wrapper(t)) for pattern, t in client._mounts.items()
    }
    return out


_COPIES: OrderedDict[int, tuple[Runnable[Any, Any], Runnable[Any, Any]]] = OrderedDict()
_COPIES_LOCK = threading.Lock()
_MAX_COPIES = 512
_INSTRUMENTED: set[int] = set()
_WARNED: set[str] = set()


def _is_instrumented(model: Any) -> bool:
    while isinstance(model, RunnableBinding):
        model = model.bound
    if isinstance(model, RunnableSequence):
        model = model.last
    return id(model) in _INSTRUMENTED


def instrumented(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """``model`` with its OpenAI SDK client counted at the transport and SDK retries off.

    Cached per model object; returns ``model`` itself where it cannot be instrumented (then
    "a started call counts").
    """
    if id(model) in _INSTRUMENTED:
        return model
    with _COPIES_LOCK:
        hit = _COPIES.get(id(model))
        if hit is not None and hit[0] is model:
            _COPIES.move_to_end(id(model))
            return hit[1]
    made = _instrument(model)
    with _COPIES_LOCK:
        _COPIES[id(model)] = (model, made)  # keeps `model` alive, so its id stays unique
        while len(_COPIES) > _MAX_COPIES:
            _, (_old, old_copy) = _COPIES.popitem(last=False)
            _INSTRUMENTED.discard(id(old_copy))
    return made


def _instrument(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    if isinstance(model, RunnableBinding):
        inner = _instrument(model.bound)
        return model if inner is model.bound else model.model_copy(update={"bound": inner})
    if isinstance(model, RunnableSequence):
        last = _instrument(model.last)
        return model if last is model.last else model.model_copy(update={"last": last})
    if _has_openai_client(model):
        try:
            made = _copy_openai_model(model)
        except Exception as exc:  # an SDK shape we do not know: count at the start instead
            _warn_once(
                type(model).__name__,
                f"hia_chain could not count calls of {type(model).__name__} at the HTTP "
                f"transport ({exc!r}); a started call counts. Pass max_retries=0 to the model.",
            )
            return model
        _INSTRUMENTED.add(id(made))
        return made
    retries = getattr(model, "max_retries", None)
    if isinstance(retries, int) and retries > 0:
        _warn_once(
            type(model).__name__,
            f"{type(model).__name__} retries failed calls itself (max_retries={retries}); the "
            "budget sees one call per attempt of hia_chain, so the provider may see more. "
            "Pass max_retries=0 to the model: hia_chain retries transient errors, each paid.",
        )
    return model


def _has_openai_client(model: Any) -> bool:
    root = getattr(model, "root_async_client", None)
    return root is not None and callable(getattr(root, "with_options", None))


def _copy_openai_model(model: Any) -> Runnable[Any, Any]:
    update: dict[str, Any] = {"max_retries": 0}
    root_async = model.root_async_client
    http_async = _counting_http_client(root_async._client, _AsyncCounting)
    new_async = root_async.with_options(max_retries=0, http_client=http_async)
    update["root_async_client"] = new_async
    if getattr(model, "async_client", None) is not None:
        update["async_client"] = new_async.chat.completions
    root = getattr(model, "root_client", None)
    if root is not None and callable(getattr(root, "with_options", None)):
        http = _counting_http_client(root._client, _SyncCounting)
        new = root.with_options(max_retries=0, http_client=http)
        update["root_client"] = new
        if getattr(model, "client", None) is not None:
            update["client"] = new.chat.completions
    copy: Runnable[Any, Any] = model.model_copy(update=update)
    return copy


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(message)
