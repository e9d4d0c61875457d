"""Every failure as OpenAI's error JSON with the status an OpenAI client expects.

Clients (the openai SDKs, tools that speak the API) branch on the status and read
``error.message``; so a bad goal is a 400 naming ``hia.goal``, an exhausted key a 429 with
``Retry-After``, an unreachable provider a 502 and a slow one a 504. Nothing here ever puts
a traceback (or an API key) in a body: unexpected errors are logged and answered with a
generic 500.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import openai
from pydantic import ValidationError

from hia_chain.errors import (
    AllCandidatesFilteredError,
    BudgetExceededError,
    ConfigError,
    HIAError,
    RewardModelError,
    StoreUnavailableError,
)

__all__ = ["APIError", "from_exception", "from_validation"]

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def from_validation(exc: ValidationError, prefix: str = "") -> APIError:
    """A pydantic error on the request body as a 400 naming the first bad field."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    param = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or None)
    value = first.get("input")
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    msg = f"`{param}`: {first.get('msg', 'invalid value')} (got {shown})."
    if first.get("type") == "extra_forbidden":
        msg = f"`{param}` is not a known field."
    return APIError(400, msg, param=param, code="invalid_value")


_FIELD = re.compile(r"`(\w+)")


def from_exception(exc: BaseException, *, retry_after: float | None = None) -> APIError:
    """The error a client gets for ``exc`` raised while answering its request.

    Args:
        exc: What the search, the budget or the upstream call raised.
        retry_after: Seconds until the caller's key budget resets (for a 429).
    """
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, BudgetExceededError):
        headers = {} if retry_after is None else {"Retry-After": str(max(1, round(retry_after)))}
        when = (
            f" It resets in {max(1, round(retry_after))} s."
            if retry_after is not None
            else " This key's budget does not reset."
        )
        return APIError(
            429,
            f"The budget of this API key is exhausted: {exc}{when}",
            type="insufficient_quota",
            code="budget_exhausted",
            headers=headers,
        )
    if isinstance(exc, StoreUnavailableError):  # fail closed: no reservation, no call
        return APIError(503, str(exc), type="server_error", code="store_unavailable")
    if isinstance(exc, ConfigError):
        found = _FIELD.search(str(exc))
        param = f"hia.{found.group(1)}" if found else "hia"
        return APIError(400, str(exc), param=param, code="invalid_value")
    if isinstance(exc, AllCandidatesFilteredError | RewardModelError):
        return APIError(422, str(exc), type="invalid_request_error", code="alignment_failed")
    if isinstance(exc, TimeoutError):
        return APIError(504, f"The upstream model timed out: {exc}", type="upstream_timeout")
    upstream = _from_openai(exc)
    if upstream is not None:
        return upstream
    if isinstance(exc, HIAError):
        return APIError(500, f"{type(exc).__name__}: {exc}", type="server_error")
    logger.error("Unexpected error answering a request", exc_info=exc)
    return APIError(500, "Internal server error (logged on the server).", type="server_error")


def _from_openai(exc: BaseException) -> APIError | None:
    """Errors of the ``openai`` upstream client: down → 502, timeout → 504, statuses mapped."""
    if isinstance(exc, openai.APITimeoutError):
        return APIError(504, "The upstream model timed out.", type="upstream_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return APIError(
            502, f"The upstream model cannot be reached: {exc}", type="upstream_unavailable"
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _upstream_message(exc)
        if status in (400, 404, 413, 422):  # the client's request was refused: theirs to fix
            return APIError(status, f"The upstream model refused the request: {detail}")
        if status == 429:
            after = exc.response.headers.get("retry-after")
            return APIError(
                429,
                f"The upstream model is rate-limiting: {detail}",
                type="rate_limit_error",
                code="upstream_rate_limited",
                headers={"Retry-After": after} if after else {},
            )
        return APIError(
            502, f"The upstream model failed ({status}): {detail}", type="upstream_error"
        )
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        return APIError(
            502, f"The upstream model's answer is unreadable: {exc}", type="upstream_error"
        )
    return None


def _upstream_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))
