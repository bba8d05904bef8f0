"""Where a line of the plain-text part may break, and how wide text is in a monospace font.

Latin text breaks at spaces only (never inside a word, a URL or a placeholder). Chinese and Japanese
have no spaces: a line may break between any two wide characters, except before closing punctuation
and after opening punctuation (the line-start and line-end prohibitions of the W3C's Chinese and
Japanese layout requirements, https://www.w3.org/TR/clreq/#prohibition_rules_for_line_start_and_end
and https://www.w3.org/TR/jlreq/#characters_not_starting_a_line).

Written here rather than taken from a UAX #14 library: the one we tried (uniseg 0.10) costs about
50 µs a character, a quarter of a second for a Chinese issue, and the rules a plain-text email needs
are these few tables.
"""

from __future__ import annotations

import re
import unicodedata

import wcwidth

# Characters a line may not start with: closing brackets and quotes, stops and commas (CJK and
# Latin), small kana, iteration and prolonged-sound marks, percent and degree signs.
NO_LINE_START = frozenset(
    "、。，．,.：:；;？?！!）)」』】〕〉》〗〙〛｝]}”’〞〟ー～…‥・ゝゞヽヾ々〻"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ％%‰℃"
)
# Characters a line may not end with: opening brackets and quotes, currency signs before a number.
NO_LINE_END = frozenset("（(「『【〔〈《〖〘〚｛[{“‘〝＄$￥¥£€")
# Never broken inside: links, per-recipient placeholders (-first_name-) and link references ([3]),
# and a reference stays on the line of the word it follows.
_UNBREAKABLE = re.compile(r"(?:https?|mailto):\S+|-[a-z][a-z0-9_]*-|\[\d+\]")
_ZWJ = "\u200d"


def display_width(text: str) -> int:
    """How many Latin letters' room a text takes in a monospace font.

    CJK characters and emoji take two; an emoji sequence ('👨‍👩‍👧', '👍🏽', a flag) is one
    emoji; combining vowel signs and accents (Hindi, Thai, Arabic) take none.
    """
    if text.isascii() and text.isprintable():
        return len(text)
    width = wcwidth.wcswidth(text)
    return width if width >= 0 else len(text)  # -1: a control character (mailer check reports those)


def wrap(text: str, width: int, indent: str = "", first: str | None = None) -> str:
    """Fill `text` into lines of at most `width` columns (a word wider than that gets a line of its own).

    White space is collapsed first. `first` starts the first line instead of `indent` (a bullet).
    """
    words = text.split()
    if not words:
        return ""
    lines: list[str] = []
    line = indent if first is None else first
    used = display_width(line)
    empty = True
    for word in words:
        for number, piece in enumerate(_pieces(word)):
            space = " " if number == 0 and not empty else ""
            piece_width = display_width(piece)
            if not empty and used + len(space) + piece_width > width:
                lines.append(line)
                line, used, space = indent, display_width(indent), ""
            line += space + piece
            used += len(space) + piece_width
            empty = False
    lines.append(line)
    return "\n".join(lines)


def _pieces(word: str) -> list[str]:
    """A space-free word cut where a line may break inside it (only ever next to a wide character)."""
    if word.isascii():
        return [word]
    kept: set[int] = set()  # positions a break may not come before
    for match in _UNBREAKABLE.finditer(word):
        kept.update(range(match.start() + 1, match.end()))
        if match.group(0).startswith("["):
            kept.add(match.start())
    pieces = []
    start = 0
    for i in range(1, len(word)):
        before, after = word[i - 1], word[i]
        if i in kept or not (_wide(before) or _wide(after)):
            continue
        if after in NO_LINE_START or before in NO_LINE_END:
            continue
        if _joins(before, after):
            continue
        pieces.append(word[start:i])
        start = i
    pieces.append(word[start:])
    return pieces


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in "WF"


def _joins(before: str, after: str) -> bool:
    """True inside one visible character: an emoji sequence, a flag, a letter and its marks."""
    if before == _ZWJ or after == _ZWJ or wcwidth.wcwidth(after) == 0:
        return True  # a joiner, a variation selector, a combining mark
    if "\U0001f3fb" <= after <= "\U0001f3ff":
        return True  # a skin-tone modifier
    return "\U0001f1e6" <= before <= "\U0001f1ff" and "\U0001f1e6" <= after <= "\U0001f1ff"  # a flag's two letters
