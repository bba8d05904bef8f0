"""`mailer serve`: run the public unsubscribe service (mailer.web.service) on uvicorn."""

from __future__ import annotations

import socket
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
    import uvicorn

    from mailer.config import find_workspace, load_config
    from mailer.web.listening import LOOPBACK_HOSTS
    from mailer.web.service import create_app

    config = load_config(find_workspace(Path.cwd()))
    app = create_app(config)  # refuses to start without MAILER_UNSUBSCRIBE_SECRET
    listening = _bind(host, port)  # bound here, so that a taken port is our error (exit 1), not uvicorn's
    shown = urlsplit(config.unsubscribe_url).path or "/"
    click.echo(f"Serving {config.name}'s unsubscribe page at http://{host}:{port}{shown} "
               f"(public address: {config.unsubscribe_url}). Press Ctrl-C to stop.")
    if host not in LOOPBACK_HOSTS:
        # uvicorn has no timeout for reading a request's headers: a client that never finishes one
        # holds a connection, and 100 of them make everyone else wait. A reverse proxy times them out.
        click.secho(f"warning: listening on {host}: put a reverse proxy with request timeouts (and TLS) in front, "
                    "as the README shows; slow clients could otherwise hold every connection", fg="yellow", err=True)
    # access_log off: every URL here carries a reader's token. proxy_headers: the client address
    # behind a reverse proxy on this machine (uvicorn trusts 127.0.0.1 only, by default).
    settings = uvicorn.Config(app, access_log=False, server_header=False, proxy_headers=True, log_level="warning",
                              timeout_keep_alive=5, limit_concurrency=100)
    uvicorn.Server(settings).run(sockets=[listening])


def _bind(host: str, port: int) -> socket.socket:
    from mailer.errors import ServeError
    from mailer.web.listening import listen_error

    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}\n"
                         "    hint: --host must be an address of this machine, e.g. 127.0.0.1") from None
    listening = socket.socket(family, kind)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as err:
        listening.close()
        raise listen_error(err, host, port, command="serve") from None
    return listening
