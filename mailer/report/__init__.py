"""What readers did with each issue: the provider's events turned into per-issue and per-card figures,
with machine opens and link scanners taken out, and the pictures of them (charts, the click map)."""
