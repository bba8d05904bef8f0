"""Per-recipient values and headers: the signed unsubscribe token that the service behind unsubscribe_url checks."""

from __future__ import annotations

from pathlib import Path

from mailer.compose.build import build_issue
from mailer.config import load_config
from mailer.deliver.message import Personaliser, list_id, unsubscribe_token, verify_unsubscribe_token
from mailer.deliver.subscribers import Subscriber

SECRET = b"the newsletter's secret"


def test_each_unsubscribe_link_carries_a_token_only_the_secret_could_sign(workspace: Path) -> None:
    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / "2020-12-13.yaml", config)
    personalise = Personaliser(rendered, config, SECRET)
    ada = personalise(Subscriber("Ada@example.com", "Ada"))
    url = ada.values["unsubscribe_url"]
    assert url.startswith("https://newsletter.example.com/unsubscribe?token=")
    token = url.split("token=", 1)[1]
    https, mailto = ada.headers["List-Unsubscribe"].split(", ")
    assert https == f"<{url}>" and mailto.startswith("<mailto:") and mailto.endswith(f"{token}>")

    audience = list_id(config)
    assert verify_unsubscribe_token(token, audience, SECRET) == "ada@example.com"
    assert verify_unsubscribe_token(token, audience, b"another secret") is None
    # Editing the address part of a token (to unsubscribe someone else) breaks its signature.
    someone_else = unsubscribe_token("bob@example.com", audience, SECRET).split(".")[0]
    assert verify_unsubscribe_token(f"{someone_else}.{token.split('.')[1]}", audience, SECRET) is None
    # The per-recipient fast path makes the same token as the documented function.
    assert token == unsubscribe_token("Ada@example.com", audience, SECRET)
    assert personalise(Subscriber("bob@example.com")).values["unsubscribe_url"] != url
