"""The server's configuration: one pydantic model, passed to every uvicorn worker as JSON.

Secrets are not in it: the upstream API key is read by each worker from
``$HIA_UPSTREAM_API_KEY`` (or ``$OPENAI_API_KEY``), and client keys from the ``--keys`` file,
so nothing secret travels on a command line or in the configuration.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hia_chain.errors import ConfigError
from hia_chain.factory import DEFAULT_HEURISTIC, HeuristicName
from hia_chain.goals import RewardName
from hia_chain.search.types import MAX_BUDGET, FilterName, SearchName

__all__ = ["ENV_CONFIG", "ServerConfig", "ServerHeuristic", "upstream_api_key"]

ENV_CONFIG = "HIA_SERVER_CONFIG"
"""Environment variable through which uvicorn workers receive the configuration."""

ServerHeuristic = Literal["instruction", "learned"]
"""The stage-1 heuristics the server offers (the drafter would need a local model per worker)."""


class ServerConfig(BaseModel):
    """What ``hia-chain serve`` serves and how; every field has a command-line flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream_base_url: str | None = None
    """Any OpenAI-compatible endpoint; ``None``: the embedded SmolLM2, in-process."""
    upstream_model: str | None = None
    """The model to ask for at the upstream (required with ``upstream_base_url``)."""
    upstream_timeout: float = Field(120.0, gt=0)
    """Seconds one upstream call may take before it is abandoned (504 if nothing else worked)."""
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    redis_url: str | None = None
    """Share key budgets and learned heuristics through this Redis (needed for workers > 1)."""
    keys_path: str | None = None
    """The keys file; ``None``: any key (or none) is accepted, with no caps."""
    goal: dict[str, float] = Field(default_factory=dict)
    """Default ``hia.goal`` for requests that carry ``hia`` without one."""
    budget: int = Field(2, ge=1)
    """Default ``hia.budget``: response calls per aligned request."""
    max_budget: int = Field(16, ge=1, le=MAX_BUDGET)
    """Most ``hia.budget`` any request may ask for (a key may allow less)."""
    search: SearchName = "bon"
    filter: FilterName = "heuristic"
    reward: RewardName = "euclidean"
    max_tokens: int = Field(256, ge=1)
    """Output bound used when a request gives none and one is needed: for the embedded model,
    and for keys with token or cost caps (a bound must be reserved before each call)."""
    max_retries: int = Field(1, ge=0, le=10)
    """Retries of a transient upstream error per candidate, each paid from the budget."""
    heuristic: ServerHeuristic | None = None
    """Stage-1 heuristic: ``instruction`` (one for every user) or ``learned`` (one per user,
    learning from that user's answers). ``None``: the library's default, or ``learned`` when
    ``heuristic_state`` is set."""
    heuristic_state: str | None = None
    """Warm start for every user's learned heuristic (``hia-chain calibrate --out FILE``)."""
    max_users: int = Field(10_000, ge=1)
    """Per-user heuristics kept in memory per worker (least recently used dropped)."""
    log_level: str = "info"

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if self.upstream_base_url and not self.upstream_model:
            msg = "--upstream-base-url needs --upstream-model NAME (the model to ask for there)."
            raise ConfigError(msg)
        if self.upstream_model and not self.upstream_base_url:
            msg = "--upstream-model needs --upstream-base-url URL (where that model is served)."
            raise ConfigError(msg)
        if self.budget > self.max_budget:
            msg = f"--budget ({self.budget}) is above --max-budget ({self.max_budget})."
            raise ConfigError(msg)
        if self.heuristic_state and self.heuristic not in (None, "learned"):
            msg = (
                f"--heuristic-state warm-starts the learned heuristic, not {self.heuristic!r}: "
                "use --heuristic learned or drop it."
            )
            raise ConfigError(msg)
        return self

    @property
    def heuristic_kind(self) -> HeuristicName:
        """The stage-1 heuristic this server uses, with the default resolved."""
        if self.heuristic is not None:
            return self.heuristic
        return "learned" if self.heuristic_state else DEFAULT_HEURISTIC

    @property
    def model_name(self) -> str:
        """The model id clients see in ``/v1/models`` and responses."""
        return self.upstream_model or "SmolLM2-135M-Instruct"


def upstream_api_key() -> str:
    """The upstream's API key from the environment (a placeholder for keyless servers)."""
    return os.environ.get("HIA_UPSTREAM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
