"""Checks: what would break the newsletter, found before anyone receives it (issue, text, links, list), and
the sending domain as receivers see it (`mailer doctor`: DNS, SendGrid, a message as received)."""
