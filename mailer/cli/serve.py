"""`mailer serve`: run the public unsubscribe service (mailer.web.service) on its server (mailer.web.server)."""

from __future__ import annotations

from pathlib import Path

import click

EPILOG_SERVE = """\b
Examples:
  mailer serve                          # http://127.0.0.1:8080/unsubscribe, for a reverse proxy in front
  mailer serve --host 0.0.0.0 --port 8080

\b
Sign-up (with a `signup:` section in mailer.yaml; docs/signup.md):
  GET/POST /subscribe        the form (double opt-in), or the same fields as JSON from your own site
  GET/POST /confirm/TOKEN    the emailed link: a page with a button; the button confirms

\b
Environment:
  MAILER_UNSUBSCRIBE_SECRET  the key the send signed the links with (the same value); also signs,
                             for a purpose of its own, the sign-up form and its confirmation links
  MAILER_STATE_DIR           where the suppression list is (the same folder the sends use)
  SENDGRID_WEBHOOK_PUBLIC_KEY  SendGrid's Event Webhook key: serves POST /webhooks/sendgrid
  MAILER_EXPORT_TOKEN        32+ characters: serves GET /export/suppressions to a sending machine
  MAILER_INBOUND_KEY         32+ letters, digits, - and _: serves SendGrid's Inbound Parse at
                             POST /webhooks/sendgrid-inbound/KEY (unsubscribe mails, bounces, complaints)
"""


@click.command(epilog=EPILOG_SERVE)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; behind a reverse proxy (TLS), keep 127.0.0.1.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
def serve(host: str, port: int) -> None:
    """Serve the unsubscribe page behind unsubscribe_url, and the sign-up form; record readers who leave or join.

    GET shows the page with its button (a link scanner opening it unsubscribes nobody); POST, the
    button or a mail client's one-click request, puts the reader on the local suppression list at
    once, so the next `mailer send` skips them. With a `signup:` section in mailer.yaml it also
    serves the sign-up form at /subscribe: a confirmation email goes through the backend, and the
    reader is in the subscriber store once they press its link's button. Stop with Ctrl-C.
    """
    from mailer.cli.environment import environment, workspace_config
    from mailer.web import server
    from mailer.web.listening import LOOPBACK_HOSTS
    from mailer.web.service import create_app

    config = workspace_config(Path.cwd())
    app = create_app(config, environment())  # refuses to start without MAILER_UNSUBSCRIBE_SECRET
    listening = server.listen(host, port)  # bound here, so that a taken port is our error (exit 1)
    server.raise_open_files_limit()
    public = {"unsubscribe": config.unsubscribe_url, "sign-up": config.signup.url if config.signup else None}
    click.echo(f"Serving {config.name} on http://{host}:{port}. Press Ctrl-C to stop.")
    width = max((len(what) for what, _ in app.state.endpoints), default=0) + 1
    for what, path in app.state.endpoints:
        shown = f" (public address: {public[what]})" if public.get(what) else ""
        click.echo(f"  {what + ':':{width}} http://{host}:{port}{path}{shown}")
    if host not in LOOPBACK_HOSTS:
        # The service times out slow clients itself (mailer.web.server), but it speaks plain HTTP:
        # readers' links are https, so TLS ends in front of it.
        click.secho(f"warning: listening on {host} without TLS: readers' links are https, so put a reverse proxy "
                    "(or a load balancer) that ends TLS in front, as docs/unsubscribes.md shows", fg="yellow", err=True)
    _log_to_stderr()
    server.run(app, listening)


def _log_to_stderr() -> None:
    """The service's own lines (what an inbound mail did, a store that failed) on stderr with their time; never
    an address or a token (see mailer.web.service)."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger = logging.getLogger("mailer.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
