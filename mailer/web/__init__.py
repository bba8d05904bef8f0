"""Web: everything that answers HTTP or is published for a browser: the local preview, the archive site,
and the public unsubscribe service (`mailer serve`)."""
