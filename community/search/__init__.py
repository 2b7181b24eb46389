"""Knowledge-base matching: normalise, index and rank FAQ items.

Public API::

    from community.search import KBDoc, Match, Decision, Matcher, MatcherConfig, normalize
"""

from .matcher import Matcher, MatcherConfig
from .normalize import normalize
from .types import Decision, KBDoc, Match

__all__ = ["KBDoc", "Match", "Decision", "Matcher", "MatcherConfig", "normalize"]
