"""Knowledge-base matching: normalise, index and rank FAQ items.

Public API::

    from community.search import KBDoc, Match, Decision, Matcher, MatcherConfig

    from bot.core.normalize import normalize
"""

from .matcher import Matcher, MatcherConfig
from bot.core.normalize import normalize
from .types import Decision, KBDoc, Match

__all__ = ["KBDoc", "Match", "Decision", "Matcher", "MatcherConfig", "normalize"]
