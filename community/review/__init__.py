"""One review queue for everything staff approve or reject (issue #21).

A :class:`~community.review.models.Reviewable` points at a row of one of five kinds
(held content, member flags, contributions, learned phrasings, manual reward orders);
each kind's own service still decides what approving or rejecting does.
"""
