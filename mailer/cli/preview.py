"""`mailer preview`: the live preview server, started and stopped from the terminal."""

from __future__ import annotations

from pathlib import Path

import click

EPILOG_PREVIEW = """\b
Examples:
  mailer preview                                  # every issue, at http://127.0.0.1:8000/
  mailer preview issues/2020-12-13.yaml --open    # and open that issue in the browser
  mailer preview --subscribers subscribers.example.csv --as ada.lovelace@example.com
  mailer preview --port 8080
"""


@click.command(epilog=EPILOG_PREVIEW)
@click.argument("issue_file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's own (127.0.0.1, localhost, ::1) shows "
                   "the preview, sample reader included, to other machines.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Subscribers CSV to take the sample reader from (default: an example reader, Ada).")
@click.option("--as", "as_email", metavar="EMAIL",
              help="Preview as this subscriber from --subscribers (default: the file's first subscribed reader).")
def preview(issue_file: Path | None, open_browser: bool, host: str, port: int, subscribers_path: Path | None,
            as_email: str | None) -> None:
    """Serve a live preview of every issue at a local address, newest first.

    Each issue is shown at desktop and phone widths and in dark mode, with the headers a reader
    sees, the plain-text part, the HTML size against Gmail's clipping limit and checks. The page
    updates within a second of saving the issue, a layout or mailer.yaml; problems are shown in
    the page. Per-recipient fields are filled as for a sample reader. Stop with Ctrl-C.
    """
    from urllib.parse import quote

    from mailer.cli.environment import environment
    from mailer.config import find_workspace
    from mailer.schema import display_path
    from mailer.web.listening import LOOPBACK_HOSTS
    from mailer.web.preview import EXAMPLE_READER, create_server, sample_reader

    if as_email and not subscribers_path:
        raise click.UsageError("--as needs --subscribers FILE, the file to find the reader in")
    workspace = find_workspace(issue_file.parent if issue_file else Path.cwd())
    reader = sample_reader(subscribers_path, as_email) if subscribers_path else EXAMPLE_READER
    server = create_server(workspace, host=host, port=port, reader=reader,
                           extra_issues=(issue_file,) if issue_file else (), state_dir=environment().state_path)
    try:
        url = server.url
        if server.host in ("0.0.0.0", "::"):
            url = f"http://127.0.0.1:{server.port}/" if server.host == "0.0.0.0" else f"http://[::1]:{server.port}/"
        if issue_file:
            url += f"preview/{quote(issue_file.stem)}"
        if host not in LOOPBACK_HOSTS:
            click.secho(f"warning: listening on {host}: other machines that can reach this one can see the "
                        f"preview, including the sample reader {reader.display}", fg="yellow", err=True)
        count = len(server.app.preview.issue_paths())
        click.echo(f"Previewing {count} {'issue' if count == 1 else 'issues'} from "
                   f"{display_path(workspace / 'issues')}/ at {url}")
        click.echo(f"Reading as {reader.display}. Pages update when you save. Press Ctrl-C to stop.")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        click.echo("Preview stopped.")
    finally:
        server.server_close()
