"""Peer support ("产品知道"): questions, answers, helpful votes and help requests."""
