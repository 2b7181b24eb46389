"""Watched words, the review queue and the audit trail for member-written content."""
