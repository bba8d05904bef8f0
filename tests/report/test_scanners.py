"""The scanner rules on one reader's clicks: which are a gateway's, which a person's."""

from __future__ import annotations

from mailer.report.scanners import AGENT, BURST, EARLY, Click, gateway_agent, scanner_rules

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def clicks(*moments: tuple[float, int]) -> list[Click]:
    return [Click(at, f"https://example.com/{link}", link, BROWSER) for at, link in moments]


def test_a_person_reading_then_clicking_again_is_never_a_burst() -> None:
    # Three links, each more than five seconds after the one before: no window holds three.
    assert scanner_rules(clicks((100, 1), (106, 2), (112, 3), (118, 1)), delivered_at=0) == [None] * 4


def test_a_burst_marks_every_click_in_its_window_and_only_those() -> None:
    found = scanner_rules(clicks((100, 1), (200, 2), (201, 3), (202, 4), (203, 2), (230, 5)), delivered_at=0)
    assert found == [None, BURST, BURST, BURST, BURST, None]


def test_the_same_link_clicked_three_times_at_once_is_not_a_burst() -> None:
    assert scanner_rules(clicks((100, 1), (100.5, 1), (101, 1)), delivered_at=0) == [None] * 3


def test_the_window_slides_past_old_clicks() -> None:
    # 1 and 2 leave the window before 3 and 4 come; 2, 3 and 4 are within five seconds of each other.
    found = scanner_rules(clicks((100, 1), (104, 2), (106, 3), (109, 4), (120, 1)), delivered_at=0)
    assert found == [None, BURST, BURST, BURST, None]


def test_the_first_rule_that_matches_is_the_one_counted() -> None:
    gateway = Click(105, "https://example.com/1", 1, "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))")
    early = Click(106, "https://example.com/2", 2, BROWSER)
    late = Click(110, "https://example.com/3", 3, BROWSER)  # ten seconds after delivery: a burst's only
    assert scanner_rules([gateway, early, late], delivered_at=100) == [AGENT, EARLY, BURST]


def test_gateway_agents_are_found_in_any_case() -> None:
    assert gateway_agent("MOZILLA/5.0 (COMPATIBLE; MIMECAST)") and gateway_agent("python-requests/2.32")
    assert not gateway_agent(BROWSER)
