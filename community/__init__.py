"""Community domain: knowledge base and search, Q&A posts, moderation, tickets, offers."""
