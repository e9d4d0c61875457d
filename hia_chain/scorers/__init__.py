"""Reference scorers (measure responses) and heuristic scorers (predict from prompts).

* Reference scorers, r(P, y): :class:`VerbosityScorer`, :class:`ComplexityScorer`,
  :class:`SentimentScorer` (text metrics, free), :class:`LLMJudgeScorer` (any chat model with a
  HelpSteer-style rubric, budgeted), :class:`FunctionScorer` (any callable or Runnable).
* Heuristics, r̂(c): :class:`InstructionHeuristic` (reads added instructions, free),
  :class:`LearnedHeuristic` (learns online from stage 2, free), :class:`DraftHeuristic` (a small
  model drafts, budgeted), :class:`FunctionHeuristic` (any callable or Runnable).

Sentence embeddings for :class:`SentenceEmbeddingFeaturizer` load lazily (``[embeddings]``).
"""

from hia_chain.scorers.base import Heuristic as Heuristic
from hia_chain.scorers.base import MergedScores as MergedScores
from hia_chain.scorers.base import Prediction as Prediction
from hia_chain.scorers.base import ReferenceScorer as ReferenceScorer
from hia_chain.scorers.base import check_batch as check_batch
from hia_chain.scorers.base import score_responses as score_responses
from hia_chain.scorers.draft import DraftHeuristic as DraftHeuristic
from hia_chain.scorers.function import FunctionHeuristic as FunctionHeuristic
from hia_chain.scorers.function import FunctionScorer as FunctionScorer
from hia_chain.scorers.instruction import InstructionHeuristic as InstructionHeuristic
from hia_chain.scorers.judge import HELPSTEER_RUBRICS as HELPSTEER_RUBRICS
from hia_chain.scorers.judge import LLMJudgeScorer as LLMJudgeScorer
from hia_chain.scorers.learned import Featurizer as Featurizer
from hia_chain.scorers.learned import HashingFeaturizer as HashingFeaturizer
from hia_chain.scorers.learned import InMemoryObservationStore as InMemoryObservationStore
from hia_chain.scorers.learned import LearnedHeuristic as LearnedHeuristic
from hia_chain.scorers.learned import Observation as Observation
from hia_chain.scorers.learned import ObservationStore as ObservationStore
from hia_chain.scorers.learned import SentenceEmbeddingFeaturizer as SentenceEmbeddingFeaturizer
from hia_chain.scorers.text import BUILTIN_OBJECTIVES as BUILTIN_OBJECTIVES
from hia_chain.scorers.text import ComplexityScorer as ComplexityScorer
from hia_chain.scorers.text import SentimentScorer as SentimentScorer
from hia_chain.scorers.text import VerbosityScorer as VerbosityScorer
from hia_chain.scorers.text import builtin_scorer as builtin_scorer
from hia_chain.scorers.text import builtin_scorers as builtin_scorers

__all__ = [
    "BUILTIN_OBJECTIVES",
    "ComplexityScorer",
    "DraftHeuristic",
    "Featurizer",
    "FunctionHeuristic",
    "FunctionScorer",
    "HELPSTEER_RUBRICS",
    "HashingFeaturizer",
    "Heuristic",
    "InMemoryObservationStore",
    "InstructionHeuristic",
    "LLMJudgeScorer",
    "LearnedHeuristic",
    "MergedScores",
    "Observation",
    "ObservationStore",
    "Prediction",
    "ReferenceScorer",
    "SentenceEmbeddingFeaturizer",
    "SentimentScorer",
    "VerbosityScorer",
    "builtin_scorer",
    "builtin_scorers",
    "check_batch",
    "score_responses",
]
