"""Which errors of a wrapped model are worth retrying, and the tenacity policy for them.

Transient: rate limits, timeouts, connection failures and 5xx answers, recognised by type
(openai, httpx, builtins) or by an HTTP ``status_code`` attribute. Everything else (bad
request, authentication, a bug) is surfaced unchanged on the first failure.
"""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["is_transient", "retrying"]

_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_TRANSIENT_NAMES = frozenset(
    {
        "RateLimitError",
        "APITimeoutError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "TimeoutException",
        "ConnectError",
        "ReadTimeout",
        "ConnectTimeout",
        "RemoteProtocolError",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later attempt may not hit."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in _TRANSIENT_STATUS
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def retrying(max_retries: int, *, max_wait: float = 8.0) -> AsyncRetrying:
    """A tenacity policy: ``max_retries`` further attempts on transient errors, then re-raise."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_random_exponential(multiplier=0.2, max=max_wait),
        reraise=True,
    )
