"""Prompt optimizers: propose rewrites of the user's prompt toward the goal (HIA step 1)."""

from hia_chain.optimizer.base import Feedback as Feedback
from hia_chain.optimizer.base import OptimizeRequest as OptimizeRequest
from hia_chain.optimizer.base import PromptOptimizer as PromptOptimizer
from hia_chain.optimizer.base import Proposal as Proposal
from hia_chain.optimizer.base import keeps_request as keeps_request
from hia_chain.optimizer.llm import LLMPromptOptimizer as LLMPromptOptimizer
from hia_chain.optimizer.llm import reward_context as reward_context
from hia_chain.optimizer.mixed import MixedOptimizer as MixedOptimizer
from hia_chain.optimizer.template import TemplateOptimizer as TemplateOptimizer

__all__ = [
    "Feedback",
    "LLMPromptOptimizer",
    "MixedOptimizer",
    "OptimizeRequest",
    "PromptOptimizer",
    "Proposal",
    "TemplateOptimizer",
    "keeps_request",
    "reward_context",
]
