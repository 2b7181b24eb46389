"""Member tags set by staff (VIP, plan, tenure): one service that every writer goes through."""
