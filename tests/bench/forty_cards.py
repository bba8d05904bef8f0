"""A generated issue of 40 link cards: the sample issue and eleven more sections of three cards.

A busy week's link digest (the sample has 7 cards; the added sections are shaped like its card
sections: a heading, a paragraph, cards as long as the sample's), for measuring how far an issue is
from Gmail's clipping limit (`make bench` and tests/compose/test_build.py).
"""

from __future__ import annotations

from pathlib import Path

import yaml

SAMPLE = Path(__file__).resolve().parents[2] / "issues" / "2020-12-13.yaml"
CARDS = 40


def forty_card_issue() -> str:
    """The YAML text of the sample issue grown to exactly CARDS link cards."""
    data = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    cards = sum(len(section.get("cards", [])) for section in data["sections"])
    part = 0
    while cards < CARDS:
        part += 1
        count = min(3, CARDS - cards)
        data["sections"].append({
            "heading": f"More from the week, part {part}",
            "body": ("Three more reads that caught our eye this week: a paper, a blog post and a repository, "
                     "each worth a coffee break."),
            "cards": [{
                "url": f"https://research.example.org/2020/12/part-{part}/notes-on-language-models-{n + 1}",
                "title": f"Notes on language models ({part}.{n + 1}): scaling, sparsity and the benchmarks",
                "description": ("How large language models are trained and evaluated, with code, ablations "
                                "and what the usual benchmarks leave out…"),
            } for n in range(count)],
        })
        cards += count
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=200)


def write_forty_card_issue(folder: Path) -> Path:
    """Write it beside the sample (its local images are found relative to the issue file)."""
    path = folder / "2020-12-13-forty-cards.yaml"
    path.write_text(forty_card_issue(), encoding="utf-8")
    return path
