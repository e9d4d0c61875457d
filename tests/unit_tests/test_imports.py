"""The public API is pinned, ``import hia_chain`` loads no torch, and the package keeps its
import rule: private modules stay inside their package and no layer imports a higher one."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hia_chain

EXPECTED_ALL = [
    "AlignedChatModel",
    "AllCandidatesFilteredError",
    "BaseBudget",
    "Budget",
    "BudgetExceededError",
    "ConfigError",
    "HIAError",
    "HIASearch",
    "Heuristic",
    "InstructionHeuristic",
    "LLMPromptOptimizer",
    "Limits",
    "LocalExtraMissingError",
    "MixedOptimizer",
    "Objective",
    "OptimizerError",
    "Plan",
    "Prediction",
    "Price",
    "PromptOptimizer",
    "RedisBudget",
    "RedisObservationStore",
    "ReferenceScorer",
    "Request",
    "RewardFunction",
    "RewardModelError",
    "SQLiteObservationStore",
    "SearchResult",
    "SearchSettings",
    "StopReason",
    "StoreUnavailableError",
    "TemplateOptimizer",
    "ThreadBudgets",
    "Usage",
    "get_reward_function",
    "init_aligned_chat_model",
]


def test_all_is_pinned_and_sorted() -> None:
    assert hia_chain.__all__ == EXPECTED_ALL
    assert sorted(hia_chain.__all__) == hia_chain.__all__
    for name in hia_chain.__all__:
        assert getattr(hia_chain, name) is not None


def test_core_import_leaves_torch_out() -> None:
    code = "import sys, hia_chain, hia_chain.local, hia_chain.testing; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the import rule --------------------------------------------------------------------------
#
# Every module under hia_chain belongs to a unit: a top-level module (``budget``) or a
# subpackage (``search``); the package's own ``__init__`` is the unit ``hia_chain``. Units are
# layered, and a module may import only from its own layer or below. Imports inside functions
# count too: a lazy import is still a dependency, only a later one.

CORE, COMPONENTS, ASSEMBLY, APPS = range(4)
LAYER_NAMES = ("core", "components", "assembly", "apps")
LAYERS: dict[str, int] = {
    # core: errors, goals, budgets and the one call path; knows no scorer or search
    "errors": CORE,
    "goals": CORE,
    "instructions": CORE,
    "retry": CORE,
    "budget": CORE,
    "redis_budget": CORE,  # a budget level; the observation stores share its URL handling
    "_redis_lua": CORE,
    "context": CORE,
    "calls": CORE,
    "_transport": CORE,
    "trace": CORE,
    "asyncutil": CORE,
    "jsonfile": CORE,
    "_settings": CORE,
    "_window": CORE,
    "data": CORE,
    # components: the pipeline's stages and the local path, over the core
    "scorers": COMPONENTS,
    "optimizer": COMPONENTS,
    "search": COMPONENTS,
    "stores": COMPONENTS,
    "local": COMPONENTS,
    # assembly: the chat models and builders that put components together
    "aligned": ASSEMBLY,
    "_messages": ASSEMBLY,
    "_step": ASSEMBLY,
    "_uncached": ASSEMBLY,
    "agents": ASSEMBLY,
    "calibration": ASSEMBLY,
    "factory": ASSEMBLY,
    "hia_chain": ASSEMBLY,  # the package's __init__ re-exports the assembled API
    # apps: entry points and the test seam, which only use the library
    "server": APPS,
    "cli": APPS,
    "bench": APPS,
    "testing": APPS,
    "__main__": APPS,
}

ALLOWED_UPWARD: dict[tuple[str, str], str] = {}
"""(importing file, imported unit) -> why that lower-layer file may import the higher unit."""

_ROOT = Path(hia_chain.__file__).resolve().parent


def _dotted(path: Path) -> str:
    parts = path.relative_to(_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    """The package a file belongs to (a package's ``__init__`` belongs to the package)."""
    return ".".join(path.relative_to(_ROOT.parent).parts[:-1])


def _is_package(dotted: str) -> bool:
    return (_ROOT.parent / dotted.replace(".", "/") / "__init__.py").is_file()


def _is_module(dotted: str) -> bool:
    where = _ROOT.parent / dotted.replace(".", "/")
    return where.with_suffix(".py").is_file() or _is_package(dotted)


def _imports(source: str, package: str) -> Iterator[tuple[int, str, str]]:
    """``(line, imported path, statement)`` for every hia_chain import in ``source``, at any
    depth (inside functions too); the imported path is ``module`` or ``module.name``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hia_chain":
                    yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "hia_chain":
                continue
            for alias in node.names:
                target = base if alias.name == "*" else f"{base}.{alias.name}"
                yield node.lineno, target, f"from {base} import {alias.name}"


def _private_owner(target: str) -> str | None:
    """The package a private module or name in ``target`` belongs to, if any is private."""
    parts = target.split(".")
    for i, part in enumerate(parts[1:], 1):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            return owner if _is_package(owner) else owner.rpartition(".")[0]
    return None


def _unit(target: str) -> str:
    """The layered unit of an imported path (a name from the package's __init__ is ``hia_chain``)."""
    parts = target.split(".")
    if len(parts) > 1 and _is_module(".".join(parts[:2])):
        return parts[1]
    return "hia_chain"


def _check(rel: str, module: str, package: str, source: str) -> list[str]:
    """The rule's violations in one module's ``source``, each naming file, line and import."""
    own_unit = _unit(module)
    if own_unit not in LAYERS:
        return [f"{rel}: unit {own_unit!r} has no layer: add it to LAYERS"]
    found = []
    for line, target, statement in _imports(source, package):
        where = f"{rel}:{line}: `{statement}`"
        owner = _private_owner(target)
        if owner is not None and owner != package:
            found.append(f"{where} reaches into {owner}'s private parts from {package}")
        unit = _unit(target)
        layer, own = LAYERS.get(unit, APPS), LAYERS[own_unit]
        if layer > own and (rel, unit) not in ALLOWED_UPWARD:
            found.append(
                f"{where} imports upward: {own_unit} ({LAYER_NAMES[own]}) -> "
                f"{unit} ({LAYER_NAMES[layer]})"
            )
    return found


def _violations() -> list[str]:
    found = []
    for path in sorted(_ROOT.rglob("*.py")):
        rel = path.relative_to(_ROOT.parent).as_posix()
        found += _check(rel, _dotted(path), _package_of(path), path.read_text())
    return found


def test_no_upward_or_cross_package_private_imports() -> None:
    """Private (``_``) modules and names stay inside their package, and no layer imports a
    higher one (core < components < assembly < apps; see LAYERS)."""
    found = _violations()
    assert not found, "\n".join(["import rule violations:", *found])


def test_the_rule_sees_lazy_upward_and_cross_package_private_imports() -> None:
    """The checker itself, on made-up modules: a lazy upward import, a private module of
    another package, and a private module of the top-level package from a subpackage are
    found; a private module of one's own package and a downward import are not."""
    source = (
        "from hia_chain.scorers import _features\n"
        "from hia_chain._transport import counting\n"
        "from hia_chain.search._own import helper\n"
        "from hia_chain.budget import Budget\n"
        "def later():\n"
        "    from hia_chain.aligned import AlignedChatModel\n"
    )
    found = _check("hia_chain/search/x.py", "hia_chain.search.x", "hia_chain.search", source)
    assert [f.split(": `")[0] for f in found] == [
        "hia_chain/search/x.py:1",
        "hia_chain/search/x.py:2",
        "hia_chain/search/x.py:6",
    ]
    assert "search (components) -> aligned (assembly)" in found[2]
    assert not _check("hia_chain/calls.py", "hia_chain.calls", "hia_chain", source.split("\n")[1])
