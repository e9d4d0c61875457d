"""The HIA search: two-stage filter with bon / greedy / beam, and the baselines."""

from hia_chain.search.engine import HIASearch as HIASearch
from hia_chain.search.strategies import StopReason as StopReason
from hia_chain.search.types import FILTERS as FILTERS
from hia_chain.search.types import SEARCHES as SEARCHES
from hia_chain.search.types import SETTING_NAMES as SETTING_NAMES
from hia_chain.search.types import Candidate as Candidate
from hia_chain.search.types import Plan as Plan
from hia_chain.search.types import Request as Request
from hia_chain.search.types import Responder as Responder
from hia_chain.search.types import Response as Response
from hia_chain.search.types import SearchResult as SearchResult
from hia_chain.search.types import SearchSettings as SearchSettings

__all__ = [
    "FILTERS",
    "SEARCHES",
    "SETTING_NAMES",
    "Candidate",
    "HIASearch",
    "Plan",
    "Request",
    "Responder",
    "Response",
    "SearchResult",
    "SearchSettings",
    "StopReason",
]
