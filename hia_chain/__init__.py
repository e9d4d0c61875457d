"""hia_chain: inference-time alignment for LangChain chat models.

HIA (black-box models): :class:`AlignedChatModel` proposes rewrites of the prompt, filters
them with cheap heuristic scorers, spends a hard budget of calls on the best few, and
answers with the response that best meets the goal. IVG (local models) lives in
:mod:`hia_chain.local`, behind the ``[local]`` extra, and is never imported from here.
"""

from hia_chain.agents import ThreadBudgets as ThreadBudgets
from hia_chain.aligned import AlignedChatModel as AlignedChatModel
from hia_chain.budget import BaseBudget as BaseBudget
from hia_chain.budget import Budget as Budget
from hia_chain.budget import Limits as Limits
from hia_chain.budget import Price as Price
from hia_chain.budget import Usage as Usage
from hia_chain.errors import AllCandidatesFilteredError as AllCandidatesFilteredError
from hia_chain.errors import BudgetExceededError as BudgetExceededError
from hia_chain.errors import ConfigError as ConfigError
from hia_chain.errors import HIAError as HIAError
from hia_chain.errors import LocalExtraMissingError as LocalExtraMissingError
from hia_chain.errors import OptimizerError as OptimizerError
from hia_chain.errors import RewardModelError as RewardModelError
from hia_chain.errors import StoreUnavailableError as StoreUnavailableError
from hia_chain.factory import init_aligned_chat_model as init_aligned_chat_model
from hia_chain.goals import Objective as Objective
from hia_chain.goals import RewardFunction as RewardFunction
from hia_chain.goals import get_reward_function as get_reward_function
from hia_chain.optimizer import LLMPromptOptimizer as LLMPromptOptimizer
from hia_chain.optimizer import MixedOptimizer as MixedOptimizer
from hia_chain.optimizer import PromptOptimizer as PromptOptimizer
from hia_chain.optimizer import TemplateOptimizer as TemplateOptimizer
from hia_chain.redis_budget import RedisBudget as RedisBudget
from hia_chain.scorers.base import Heuristic as Heuristic
from hia_chain.scorers.base import Prediction as Prediction
from hia_chain.scorers.base import ReferenceScorer as ReferenceScorer
from hia_chain.scorers.instruction import InstructionHeuristic as InstructionHeuristic
from hia_chain.search import HIASearch as HIASearch
from hia_chain.search import Plan as Plan
from hia_chain.search import Request as Request
from hia_chain.search import SearchResult as SearchResult
from hia_chain.search import SearchSettings as SearchSettings
from hia_chain.search import StopReason as StopReason
from hia_chain.stores import RedisObservationStore as RedisObservationStore
from hia_chain.stores import SQLiteObservationStore as SQLiteObservationStore

__version__ = "0.1.0"

__all__ = [
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
