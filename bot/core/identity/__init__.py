"""One member across channels: display names, link codes, and merging two members into one."""
