"""Members' public pages: a member's profile and the badges everyone can earn."""
