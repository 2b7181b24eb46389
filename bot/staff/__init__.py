"""Staff accounts (agents, reviewers, marketers, admins): login, sessions, CSRF, roles."""
