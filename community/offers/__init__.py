"""Context-triggered offers ("情景营销"): marketers' rules, eligibility, records.

The right offer, to the right member, on the right channel: after an answer whose
context matches, the best eligible offer is appended as a card; every impression,
click and acceptance is recorded.
"""
