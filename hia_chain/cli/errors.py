"""One line per failure for the ``hia-chain`` command, with the exit code it maps to.

Exit codes: 0 done, 1 a runtime failure (the server, the model, the budget), 2 bad input
(flags, settings, the prompt), 130 interrupted. Set ``HIA_CHAIN_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import re
from typing import Any

from hia_chain.errors import ConfigError, HIAError
from hia_chain.retry import http_status

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_RUNTIME", "check_text", "describe"]

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_EXTRAS = {
    "rich": "cli",
    "langchain_openai": "cli",
    "openai": "cli",
    "torch": "local",
    "transformers": "local",
    "gguf": "local",
    "filelock": "local",
    "sentence_transformers": "embeddings",
    "fastapi": "server",
    "uvicorn": "server",
    "matplotlib": "bench",
    "scipy": "bench",
    "redis": "redis",
}
"""A missing top-level module → the extra of pyproject.toml that installs it."""


def check_text(value: str, what: str) -> str:
    """Refuse text that came from non-UTF-8 bytes (Python keeps them as lone surrogates).

    Raises:
        ConfigError: names the position of the first bad byte.
    """
    for i, ch in enumerate(value):
        if "\udc80" <= ch <= "\udcff":
            msg = (
                f"{what} has a byte that is not UTF-8 (0x{ord(ch) - 0xDC00:02x} at character "
                f"{i}); pass UTF-8 text (e.g. convert it with iconv -t UTF-8)."
            )
            raise ConfigError(msg)
        if "\ud800" <= ch <= "\udfff":
            msg = f"{what} has an unpaired surrogate at character {i}; pass valid UTF-8 text."
            raise ConfigError(msg)
    return value


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and, for exception groups, their first leaves."""
    out: list[BaseException] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        group = getattr(e, "exceptions", None)  # an ExceptionGroup (3.11+ or the backport)
        if isinstance(group, tuple | list) and group and isinstance(group[0], BaseException):
            todo.append(group[0])
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return out


def _names(e: BaseException) -> set[str]:
    return {c.__name__ for c in type(e).__mro__}


def describe(exc: BaseException, base_url: str | None = None) -> tuple[int, str]:
    """The exit code and the one line to print for ``exc``."""
    chain = _chain(exc)
    where = f" at {base_url}" if base_url else ""
    for e in chain:
        if isinstance(e, ConfigError):
            return EXIT_BAD_INPUT, _one_line(str(e))
    for e in chain:
        if isinstance(e, ModuleNotFoundError) and e.name:
            top = e.name.split(".")[0]
            extra = _EXTRAS.get(top)
            if extra:
                return EXIT_RUNTIME, (
                    f"the '{top}' package is missing; install the extra: "
                    f"pip install 'hia-chain[{extra}]'"
                )
            return EXIT_RUNTIME, f"the Python package '{top}' is missing; pip install it"
    for e in chain:
        names = _names(e)
        if names & {"APIConnectionError", "ConnectError", "ConnectionRefusedError"} and not (
            names & {"APITimeoutError"}
        ):
            return EXIT_RUNTIME, (
                f"cannot connect to the model server{where}: is it running on that address? "
                "Start it, or fix --base-url."
            )
    for e in chain:
        names = _names(e)
        if names & {"APITimeoutError", "TimeoutException", "TimeoutError"}:
            return EXIT_RUNTIME, (
                f"the model server{where} did not answer in time ({_one_line(str(e)) or 'timeout'}); "
                "retry later, or raise the timeout."
            )
    for e in chain:
        status = http_status(e)
        if status in (401, 403):
            return EXIT_RUNTIME, (
                f"the model server{where} refused the credentials (HTTP {status}); set "
                "OPENAI_API_KEY to a valid key."
            )
        if status in (404, 405, 501):
            return EXIT_RUNTIME, (
                f"the server{where} is not an OpenAI-compatible API (HTTP {status} for "
                "/chat/completions); point --base-url at one (it usually ends in /v1)."
            )
        if status is not None and status >= 400:
            return EXIT_RUNTIME, (
                f"the model server{where} answered HTTP {status}: {_short(e)}; retry later, or "
                "check the server's log."
            )
    for e in chain:
        names = _names(e)
        if names & {"APIResponseValidationError", "JSONDecodeError", "DecodingError"} or (
            "Expecting value" in str(e) or "Unexpected response type" in str(e)
        ):
            return EXIT_RUNTIME, (
                f"the server{where} did not answer like an OpenAI-compatible API (its reply is "
                "not chat-completions JSON); point --base-url at one (it usually ends in /v1)."
            )
    for e in chain:
        if isinstance(e, HIAError):
            return EXIT_RUNTIME, _one_line(str(e))
    return EXIT_RUNTIME, f"{type(exc).__name__}: {_short(exc)} (HIA_CHAIN_DEBUG=1 shows where)"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _short(exc: Any, limit: int = 200) -> str:
    text = _one_line(str(exc))
    return text if len(text) <= limit else text[: limit - 1] + "…"
