"""Knowledge lifecycle: versions and review, member contributions, learning
question variants from use, "knowledge wanted", notices, and /admin/knowledge."""
