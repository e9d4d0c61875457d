"""Every budget constructor takes the caps the same way: ``Budget(calls=5)``,
``RedisBudget(url, name, calls=5)`` and ``ThreadBudgets(calls=5)`` mean the same cap, so a
user moving from one to another changes only what is new (where the state lives)."""

from __future__ import annotations

import inspect

from hia_chain import BaseBudget, Budget, RedisBudget, ThreadBudgets

CAPS = ("calls", "tokens", "cost", "limits", "prices", "parent")


def _caps(cls: type) -> list[tuple[str, inspect._ParameterKind, object]]:
    params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    return [(n, params[n].kind, params[n].default) for n in CAPS]


def test_caps_have_the_same_names_kinds_and_defaults_everywhere() -> None:
    expected = _caps(BaseBudget)
    for cls in (Budget, RedisBudget, ThreadBudgets):
        assert _caps(cls) == expected, cls.__name__


def test_what_only_one_kind_of_budget_has_is_keyword_only() -> None:
    for cls in (Budget, RedisBudget, ThreadBudgets):
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
        extra = [p for n, p in params.items() if n not in (*CAPS, "self", "url", "name")]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra), cls.__name__
