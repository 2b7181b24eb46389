"""The hotline agent inbox: tickets, their queue, agent replies and satisfaction surveys."""
