"""`mailer serve`: run the public unsubscribe service (mailer.web.service) on its server (mailer.web.server)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

EPILOG_SERVE = """\b
Examples:
  mailer serve                          # http://127.0.0.1:8080/unsubscribe, for a reverse proxy in front
  mailer serve --host 0.0.0.0 --port 8080

\b
Environment:
  MAILER_UNSUBSCRIBE_SECRET  the key the send signed the links with (the same value)
  MAILER_STATE_DIR           where the suppression list is (the same folder the sends use)
  SENDGRID_WEBHOOK_PUBLIC_KEY  SendGrid's Event Webhook key: serves POST /webhooks/sendgrid
  MAILER_EXPORT_TOKEN        32+ characters: serves GET /export/suppressions to a sending machine
"""


@click.command(epilog=EPILOG_SERVE)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; behind a reverse proxy (TLS), keep 127.0.0.1.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Serve the unsubscribe page behind unsubscribe_url, and record readers who leave.

    GET shows the page with its button (a link scanner opening it unsubscribes nobody); POST, the
    button or a mail client's one-click request, puts the reader on the local suppression list at
    once, so the next `mailer send` skips them. Stop with Ctrl-C.
    """
    from mailer.config import find_workspace, load_config
    from mailer.web import server
    from mailer.web.listening import LOOPBACK_HOSTS
    from mailer.web.service import create_app

    config = load_config(find_workspace(Path.cwd()))
    app = create_app(config)  # refuses to start without MAILER_UNSUBSCRIBE_SECRET
    listening = server.listen(host, port)  # bound here, so that a taken port is our error (exit 1)
    server.raise_open_files_limit()
    shown = urlsplit(config.unsubscribe_url).path or "/"
    click.echo(f"Serving {config.name}'s unsubscribe page at http://{host}:{port}{shown} "
               f"(public address: {config.unsubscribe_url}). Press Ctrl-C to stop.")
    if host not in LOOPBACK_HOSTS:
        # The service times out slow clients itself (mailer.web.server), but it speaks plain HTTP:
        # readers' links are https, so TLS ends in front of it.
        click.secho(f"warning: listening on {host} without TLS: readers' links are https, so put a reverse proxy "
                    "(or a load balancer) that ends TLS in front, as the README shows", fg="yellow", err=True)
    server.run(app, listening)
