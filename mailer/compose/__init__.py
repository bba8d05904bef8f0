"""Compose: an issue's YAML becomes the email (Jinja2 layouts → MJML → inlined HTML, plus the plain-text part)."""
