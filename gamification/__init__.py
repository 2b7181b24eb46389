"""Gamification: points ledger, scoring rules, caps, credibility, badges, leaderboards, rewards."""
