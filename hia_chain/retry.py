"""Which errors of a wrapped model are worth retrying, and the tenacity policy for them.

Transient: rate limits, timeouts, connection failures, overload and 5xx answers. Recognised
without importing any optional SDK: by an HTTP status (a ``status_code``, ``status`` or
``code`` attribute, or the one on ``response``), by an ``is_retryable`` flag (langchain-core's
``ModelError`` family), by a ``retry_after`` hint, or by class name anywhere in the MRO
(openai, httpx, aiohttp, google-api-core, builtins). Everything else (bad request,
authentication, a bug) is surfaced unchanged on the first failure.

The wait honours a provider's ``Retry-After`` (header or attribute) and never sleeps past a
request's deadline: a retry that could not start in time is not attempted.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["http_status", "is_transient", "retry_after", "retrying"]

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_TRANSIENT_NAMES = frozenset(
    {
        # openai / anthropic SDKs
        "RateLimitError",
        "APITimeoutError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        # langchain-core
        "ModelRateLimitError",
        "ModelTimeoutError",
        "ModelConnectionError",
        "ModelAPIError",
        # httpx / httpcore
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "ReadTimeout",
        "WriteTimeout",
        "ConnectTimeout",
        "PoolTimeout",
        "RemoteProtocolError",
        # aiohttp
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientConnectionError",
        "ServerTimeoutError",
        # google-api-core
        "ResourceExhausted",
        "ServiceUnavailable",
        "DeadlineExceeded",
        "TooManyRequests",
    }
)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an error reports, if any (``status_code``, ``status``, ``code``)."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later attempt may not hit."""
    status = http_status(exc)
    if status is not None and status >= 400:
        return status in TRANSIENT_STATUS
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    flag = getattr(exc, "is_retryable", None)
    if isinstance(flag, bool) and flag:
        return True
    if retry_after(exc) is not None:
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``), if it said."""
    value: Any = getattr(exc, "retry_after", None)
    if value is None:
        for holder in (exc, getattr(exc, "response", None)):
            headers = getattr(holder, "headers", None)
            getter = getattr(headers, "get", None)
            if callable(getter):
                value = getter("retry-after-ms")
                if value is not None:
                    try:
                        return max(0.0, float(value) / 1000)
                    except (TypeError, ValueError):
                        value = None
                value = getter("retry-after")
                if value is not None:
                    break
    if value is None:
        return None
    if hasattr(value, "total_seconds"):  # a timedelta
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value) if value else None
            except (TypeError, ValueError):
                return None  # neither seconds nor an HTTP date: no hint, not an error
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    return None


def retrying(
    max_retries: int,
    *,
    max_wait: float = 8.0,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncRetrying:
    """A tenacity policy: ``max_retries`` further attempts on transient errors, then re-raise.

    Args:
        max_retries: Further attempts after the first.
        max_wait: Cap of the exponential backoff (a ``Retry-After`` may ask for longer).
        deadline: A ``clock()`` time no retry may start after; one whose wait would pass
            it is not made, and the last error is raised.
        clock: The clock ``deadline`` is on.
    """
    backoff = wait_random_exponential(multiplier=0.2, max=max_wait)

    def wait(state: RetryCallState) -> float:
        delay = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        hint = retry_after(exc) if exc is not None else None
        return max(delay, hint) if hint is not None else delay

    def stop(state: RetryCallState) -> bool:
        if stop_after_attempt(max_retries + 1)(state):
            return True
        if deadline is None:
            return False
        return clock() + (state.upcoming_sleep or 0.0) >= deadline

    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop,
        wait=wait,
        reraise=True,
    )
