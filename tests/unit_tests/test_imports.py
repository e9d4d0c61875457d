import subprocess
import sys

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
    "RewardFunction",
    "RewardModelError",
    "SQLiteObservationStore",
    "SearchResult",
    "SearchSettings",
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
    code = "import sys, hia_chain, hia_chain.local; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
