"""Every error hia_chain raises, in one place.

Hierarchy::

    HIAError
    ├── ConfigError (also ValueError)        bad settings or bad input: names the field and the fix
    ├── BudgetExceededError                  no call could be made within the budget
    ├── AllCandidatesFilteredError           every candidate prompt was rejected
    ├── RewardModelError                     a scorer returned NaN, a wrong count or a missing key
    ├── OptimizerError                       the prompt optimizer failed to produce candidates
    ├── StoreUnavailableError                shared state outside the process (Redis, SQLite) is unreachable
    └── LocalExtraMissingError (also ImportError)  the ``[local]`` extra or the embedded model is missing

Callers can catch ``HIAError`` for everything, or a leaf for one failure.
"""

from __future__ import annotations

__all__ = [
    "AllCandidatesFilteredError",
    "BudgetExceededError",
    "ConfigError",
    "HIAError",
    "LocalExtraMissingError",
    "OptimizerError",
    "RewardModelError",
    "StoreUnavailableError",
]


class HIAError(Exception):
    """Base class of every error raised by hia_chain."""


class ConfigError(HIAError, ValueError):
    """Raised when a setting or an input is invalid; the message names the field and the fix."""


class BudgetExceededError(HIAError):
    """Raised when a budget cannot pay for a call.

    ``partial``: when a batch scorer ran out part-way, its results so far, one per input
    (``None`` where the budget refused), so the answers it did score are not thrown away.
    """

    def __init__(
        self, message: str, *, partial: list[dict[str, float] | None] | None = None
    ) -> None:
        super().__init__(message)
        self.partial = partial


class AllCandidatesFilteredError(HIAError):
    """Raised when no candidate prompt survives validation, so nothing can be sent."""


class RewardModelError(HIAError):
    """Raised when a scorer returns NaN, the wrong number of results or lacks an objective."""


class OptimizerError(HIAError):
    """Raised when the prompt optimizer's model fails in a way that is not retried."""


class StoreUnavailableError(HIAError):
    """Raised when shared state kept outside the process (a RedisBudget pool, a Redis or SQLite
    observation store) cannot be reached or lost its data; the message names the store and its
    URL. A budget fails closed: no call is made without a reservation."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class LocalExtraMissingError(HIAError, ImportError):
    """Raised when the local path is used without ``hia-chain[local]`` or the embedded model."""
