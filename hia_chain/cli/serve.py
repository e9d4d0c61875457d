"""``hia-chain serve``: flags → :class:`~hia_chain.server.config.ServerConfig` → ``serve``.

The ``[server]`` extra (FastAPI, uvicorn) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, get_args

from hia_chain.cli.options import add_goal, objectives_epilog, paragraph
from hia_chain.errors import ConfigError
from hia_chain.factory import DEFAULT_HEURISTIC
from hia_chain.goals import REWARD_NAMES, parse_goal
from hia_chain.search.types import SEARCHES
from hia_chain.server.config import (  # pydantic only: no [server] extra needed
    ServerConfig,
    ServerHeuristic,
)

if TYPE_CHECKING:
    from hia_chain.cli.options import Subparsers

__all__ = ["register", "run"]


def _default(name: str) -> Any:
    """ServerConfig's default for ``name``: each flag's default is the configuration's own."""
    return ServerConfig.model_fields[name].default


def register(sub: Subparsers) -> None:
    """Add ``serve`` to the ``hia-chain`` subcommands (argparse only: nothing heavy imported)."""
    p = sub.add_parser(
        "serve",
        help="An OpenAI-compatible server that aligns every request (POST /v1/chat/completions).",
        description=paragraph(
            "Without --upstream-base-url it serves the embedded SmolLM2 in-process, offline. "
            "The upstream API key comes from $HIA_UPSTREAM_API_KEY or $OPENAI_API_KEY."
        ),
        epilog=objectives_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--upstream-base-url", help="any OpenAI-compatible endpoint, e.g. http://host/v1"
    )
    p.add_argument("--upstream-model", help="the model to ask for at --upstream-base-url")
    p.add_argument(
        "--upstream-timeout",
        type=float,
        default=_default("upstream_timeout"),
        help="seconds per call (default %(default)s)",
    )
    p.add_argument("--host", default=_default("host"), help="default %(default)s")
    p.add_argument("--port", type=int, default=_default("port"), help="default %(default)s")
    p.add_argument(
        "--workers",
        type=int,
        default=_default("workers"),
        help="uvicorn worker processes (default %(default)s)",
    )
    p.add_argument("--redis-url", help="share key budgets and learned heuristics (workers > 1)")
    p.add_argument(
        "--keys", dest="keys_path", metavar="FILE", help="API keys and their caps (JSON)"
    )
    add_goal(p, None, without="sets hia.goal for requests that carry none (default none: a 400)")
    p.add_argument(
        "--budget",
        type=int,
        default=_default("budget"),
        help="default hia.budget (default %(default)s)",
    )
    p.add_argument(
        "--max-budget",
        type=int,
        default=_default("max_budget"),
        help="most hia.budget per request (default %(default)s)",
    )
    p.add_argument(
        "--search", choices=SEARCHES, default=_default("search"), help="default %(default)s"
    )
    p.add_argument(
        "--reward", choices=REWARD_NAMES, default=_default("reward"), help="default %(default)s"
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=_default("max_tokens"),
        help="output bound when one is needed (default %(default)s)",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        default=_default("max_retries"),
        help="paid retries of transient errors (default %(default)s)",
    )
    p.add_argument(
        "--heuristic",
        choices=get_args(ServerHeuristic),
        help="stage-1 heuristic: instruction (one for all users) or learned (one per user, "
        f"learning from that user's answers); default {DEFAULT_HEURISTIC}, or learned with "
        "--heuristic-state",
    )
    p.add_argument(
        "--heuristic-state", metavar="FILE", help="warm start for learned (hia-chain calibrate)"
    )
    p.add_argument(
        "--log-level",
        default=_default("log_level"),
        choices=["debug", "info", "warning", "error"],
        help="default %(default)s",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``hia-chain serve`` (blocks until the server stops).

    Raises:
        ConfigError: the ``[server]`` extra is missing, or a flag is bad (named as the flag).
    """
    from pydantic import ValidationError

    try:
        from hia_chain.server.launch import serve
    except ImportError as exc:  # fastapi / uvicorn missing
        msg = f"`hia-chain serve` needs the server extra: pip install 'hia-chain[server]' ({exc})."
        raise ConfigError(msg) from exc
    fields = {
        name: getattr(args, name)
        for name in (
            "upstream_base_url", "upstream_model", "upstream_timeout", "host", "port", "workers",
            "redis_url", "keys_path", "budget", "max_budget", "search", "reward", "max_tokens",
            "max_retries", "heuristic", "heuristic_state", "log_level",
        )
    }  # fmt: skip
    try:
        config = ServerConfig(goal=parse_goal(args.goal), **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            raise cause from None
        flag = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
        msg = f"{flag}: {first['msg'].lower()} (got {first.get('input')!r})."
        raise ConfigError(msg) from None
    serve(config)
    return 0
