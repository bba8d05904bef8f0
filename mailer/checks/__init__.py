"""Checks: what would break the newsletter, found before anyone receives it (issue, text, links, list)."""
