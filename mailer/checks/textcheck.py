"""Checks on a piece of text: mojibake, invisible characters, unfinished copy, placeholder typos, script.

Pure functions over strings; `mailer.checks.check` knows where the strings came from.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import ftfy
from ftfy.badness import BADNESS_RE, is_bad

from mailer.compose import placeholders
from mailer.schema import suggestion


@dataclass(frozen=True)
class Hit:
    """Something found at `start` (a character offset) in a text."""

    start: int
    found: str
    message: str
    hint: str | None = None
    severity: str = "error"


# --- mojibake ------------------------------------------------------------------------------------


def find_mojibake(text: str) -> list[Hit]:
    """Text that was decoded with the wrong charset (UTF-8 read as cp1252/latin-1: 'â€™', 'å¯†ç')."""
    hits: list[Hit] = []
    lost = text.find("\ufffd")
    if lost >= 0:
        hits.append(Hit(lost, "\ufffd", "U+FFFD replacement character: text was lost when it was decoded "
                        "with the wrong charset", "the original characters cannot be recovered from this copy: "
                        "paste the text again from its source, saved as UTF-8"))
    start = _utf8_read_as_cp1252(text)
    if start is None:
        if not is_bad(text):
            return hits
        match = BADNESS_RE.search(text)
        start = match.start() if match else 0
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line = text[line_start: line_end if line_end >= 0 else len(text)]
    excerpt = _excerpt(line, start - line_start)
    repaired = _repair(excerpt)
    if repaired != excerpt:
        hint = f"probably meant: {repaired!r} (re-copy the text from its source as UTF-8)"
    else:
        hint = "re-copy the text from its source, saved as UTF-8"
    hits.append(Hit(start, excerpt, f"mojibake: {excerpt!r} looks like text decoded with the wrong charset", hint))
    return hits


# Each byte 0x80-0xFF as the character cp1252 (or, for the five bytes cp1252 leaves undefined,
# latin-1) decodes it to: the characters UTF-8 text turns into when read with the wrong charset.
_BYTE_OF = {bytes([b]).decode("cp1252", errors="ignore") or chr(b): b for b in range(0x80, 0x100)}
_CONTINUATIONS = {0xC0: 1, 0xE0: 2, 0xF0: 3}
# Closing quotes, dashes, the ellipsis and the no-break space are continuation bytes too: a word's
# last letter followed by them is how real text is written ('Fuß“', '»Gruß«', 'CAFÉ !', '‘café’”').
_AFTER_A_WORD = set("’”“‘»«›‹…–—\xa0")


def _utf8_read_as_cp1252(text: str) -> int | None:
    """Where a complete UTF-8 sequence written as cp1252 characters starts ('Ã©' for 'é'), or None.

    ftfy's heuristics miss short fragments (a two-character Chinese word); a lead byte followed
    by exactly the right number of continuation bytes that decodes is mojibake, unless it is
    the end of a word (see `_ends_a_word`).
    """
    return next((index for index, _, _ in _sequences(text)), None)


def _sequences(text: str) -> Iterator[tuple[int, int, str]]:
    """Each UTF-8 sequence written as cp1252 characters: where it starts, its length, what it meant."""
    index = 0
    while index < len(text):
        lead = _BYTE_OF.get(text[index])
        index += 1
        if lead is None or not 0xC2 <= lead <= 0xF4:
            continue
        count = _CONTINUATIONS[0xF0 if lead >= 0xF0 else 0xE0 if lead >= 0xE0 else 0xC0]
        tail = [_BYTE_OF.get(c) for c in text[index: index + count]]
        if len(tail) == count and all(b is not None and 0x80 <= b <= 0xBF for b in tail):
            try:
                decoded = bytes([lead, *tail]).decode("utf-8")  # type: ignore[list-item]
            except UnicodeDecodeError:
                continue
            if unicodedata.category(decoded) == "Cn":
                continue  # '3×½' would be an unassigned code point
            # A word's last letter before closing punctuation is real text ('Fuß“'), unless what it
            # decodes to is a Central European or Cyrillic letter: 'SÄ… gotowe' is 'Są gotowe',
            # 'FÅ‘ utca' is 'Fő utca', and no real word ends in those pairs.
            if not ("\u0100" <= decoded <= "\u017f" or "\u0400" <= decoded <= "\u04ff") and _ends_a_word(
                    text, index - 1, count):
                continue
            yield index - 1, count + 1, decoded
            index += count


def _repair(excerpt: str) -> str:
    """The excerpt as it was written, as far as it can be told: ftfy, then the sequences it left."""
    fixed = repaired = ftfy.fix_encoding(excerpt)
    for start, length, decoded in reversed(list(_sequences(repaired))):  # ftfy leaves 'sÄ…' ('są') alone
        repaired = repaired[:start] + decoded + repaired[start + length:]
    return fixed if is_bad(repaired) else repaired  # half-repaired is no help ('ã“んã«' lost its 0x81 bytes)


def _ends_a_word(text: str, index: int, count: int) -> bool:
    """Whether the letter at `index` ends a word, followed by `count` closing quotes or dashes.

    Mojibake sits inside words, with a capital after a small letter ('sÄ…' for 'są'); 'Â' and
    'Ã' (the Latin-1 letters' mojibake, 'Ã«' for 'ë') end no word; 'ß' ends capitals too ('GROß“').
    """
    lead, before, tail = text[index], text[index - 1] if index else "", text[index + 1: index + 1 + count]
    after = text[index + 1 + count: index + 2 + count]
    return (lead not in "ÂÃ" and before.isalpha() and (before.isupper() == lead.isupper() or lead == "ß")
            and all(c in _AFTER_A_WORD for c in tail) and (not after.isalpha() or tail[-1] == "’"))  # CAFÉ’S


def _excerpt(line: str, at: int, width: int = 40) -> str:
    """The words around `at`, whole words where the text has spaces, about `width` characters."""
    begin = line.rfind(" ", 0, max(0, at - 10)) + 1
    end = line.find(" ", min(len(line), begin + width))
    end = len(line) if end < 0 else end
    if at - begin > width // 2 or end - begin > 2 * width:  # no spaces near: Chinese and Thai write none
        begin = max(0, at - 10)
        end = min(len(line), begin + width)
    return line[begin:end].strip()


# --- invisible and control characters ------------------------------------------------------------

# Characters with a job in some scripts are allowed: ZWNJ/ZWJ (Persian, Indic scripts, emoji
# sequences), LRM/RLM and ALM (marks in right-to-left text).
_ALLOWED_FORMAT = {"\u200c", "\u200d", "\u200e", "\u200f", "\u061c"}
# Hangul fillers: letters that show as nothing, used to fake blank names and subjects.
_INVISIBLE_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
# Bidi embeddings, overrides and isolates reorder the text around them (the "Trojan Source" trick).
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# ...but an isolate closed on the same line keeps a left-to-right name whole in right-to-left
# plain text, such as a subject, where markup cannot (W3C recommends it:
# https://www.w3.org/International/questions/qa-bidi-unicode-controls).
_CLOSED_ISOLATE = re.compile("[\u2066-\u2068][^\u2066-\u2069\n]*\u2069")
# The flags of England, Scotland and Wales: a black flag, then the region spelled in invisible
# tag characters (https://unicode.org/reports/tr51/#def_emoji_tag_sequence). Tags anywhere
# else hide text from the reader.
_EMOJI_TAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
# Thai, Lao, Khmer, Myanmar and Tibetan put no space between words: a zero-width space there
# marks where a line may break (Khmer keyboards type one between words).
_WORD_BREAK = re.compile("(?<=[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff])\u200b"
                         "(?=[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff])")


def find_invisible(text: str) -> list[Hit]:
    """Control characters and invisible formatting characters, one hit per kind."""
    hits: list[Hit] = []
    seen: set[str] = set()
    allowed = {index for pattern in (_EMOJI_TAG_SEQUENCE, _WORD_BREAK)
               for match in pattern.finditer(text) for index in range(*match.span())}
    # Only an isolate's own opening and closing marks: what is inside is checked like any text,
    # or an override inside one ('\u2066\u202eexe.pdf\u2069') would hide itself.
    allowed |= {index for match in _CLOSED_ISOLATE.finditer(text) for index in (match.start(), match.end() - 1)}
    for index, char in enumerate(text):
        if char in "\n\t" or char in seen or char in _ALLOWED_FORMAT or index in allowed:
            continue
        category = unicodedata.category(char)
        if category not in ("Cc", "Cf", "Zl", "Zp") and char not in _INVISIBLE_LETTERS:
            continue
        name = unicodedata.name(char, f"control character U+{ord(char):04X}")
        code = f"U+{ord(char):04X}"
        if 0xE0000 <= ord(char) <= 0xE007F:
            seen.update(map(chr, range(0xE0000, 0xE0080)))  # one finding for the hidden text, not one per letter
            run = re.match("[\U000e0000-\U000e007f]+", text[index:]).group(0)  # type: ignore[union-attr]
            hidden = "".join(chr(ord(tag) - 0xE0000) for tag in run if 0xE0020 <= ord(tag) < 0xE007F)
            hits.append(Hit(index, run, f"invisible tag characters spelling {hidden!r}",
                            "delete them: they hide text from the reader (only flag emoji use them)", "warning"))
            continue
        seen.add(char)
        if char in _BIDI_CONTROLS:
            hits.append(Hit(index, char, f"invisible {code} {name}: it reorders the text around it",
                            "delete it; for right-to-left text set 'lang' (and 'dir') instead", "error"))
        elif category == "Cc":
            hits.append(Hit(index, char, f"control character {code}: email clients show it as a box or drop it",
                            "delete it (it usually comes from copying out of a PDF or a terminal)", "error"))
        else:
            hits.append(Hit(index, char, f"invisible {code} {name}",
                            "delete it unless you meant it: it breaks searching, copying and links", "warning"))
    return hits


# --- unfinished copy ------------------------------------------------------------------------------

# '[link]' with an address after it is a finished markdown link, named 'link'.
_LEFTOVER = re.compile(r"\b(TODO|FIXME|TK|TKTK|XXX)\b|lorem ipsum|\[(?:link|url)\](?!\()", re.IGNORECASE)
# In lower case these are words or URLs: 'todo' is Spanish and Portuguese for 'all'.
_CASE_SENSITIVE = {"todo", "tk", "tktk", "xxx"}


def find_leftovers(text: str) -> list[Hit]:
    """Words editors leave in drafts: TODO, FIXME, TK, lorem ipsum, [link]."""
    hits = []
    for match in _LEFTOVER.finditer(text):
        word = match.group(0)
        if word.lower() in _CASE_SENSITIVE and not word.isupper():
            continue
        hits.append(Hit(match.start(), word, f"unfinished copy: {word!r}",
                        "write the final text (or remove the line) before sending"))
    return hits


# --- placeholders ---------------------------------------------------------------------------------

_OTHER_SYNTAX = re.compile(
    r"\{\{\s*[A-Za-z_][\w.]*\s*\}\}"  # Jinja / Handlebars / Mailgun
    r"|\{%-?\s*[a-z]+\b[^%\n]{0,200}%\}"  # Jinja / Liquid / Django statements
    r"|\$\{\s*[A-Za-z_][\w.]*\s*\}"  # JavaScript template literals, shell, Velocity
    r"|<%[=-]?\s*[^%\n]{1,200}%>"  # ERB / EJS / ASP
    r"|\*\|[A-Z0-9_]+\|\*"  # Mailchimp merge tags
    r"|%recipient\.[\w]+%"  # Mailgun
    r"|\{\$[A-Za-z_]\w*\}"  # Sendy
    r"|\[[A-Za-z_]+,\s*fallback=[^\]]*\]"  # Sendy
)
# A word between dashes, where a placeholder could be misspelt (not inside a word: state-of-the-art).
_LOOSE = re.compile(r"(?<![\w-])-[A-Za-z][A-Za-z0-9_]*-(?![\w-])")
_HALF = re.compile(r"(?<![\w-])(-?)(" + "|".join(placeholders.ALL) + r")(-?)(?![\w-])")


# Markdown code: what a newsletter about templates shows ('`{{ name }}` prints a variable').
_CODE = re.compile(r"```.*?```|~~~.*?~~~|`[^`]*`", re.DOTALL)


def find_placeholder_problems(text: str) -> list[Hit]:
    """Placeholders the sender would not fill: typos, half-written ones, another tool's syntax."""
    known = sorted(placeholders.ALL.values())
    hits = []
    text = _CODE.sub(lambda match: " " * len(match.group(0)), text)  # blanked, so offsets stay
    shaped = set()
    for match in placeholders.SHAPE.finditer(text):
        shaped.add(match.start())
        if match.group(0) in placeholders.KNOWN:  # the URL forms too: they are filled as well
            continue
        hits.append(Hit(match.start(), match.group(0), f"unknown placeholder {match.group(0)}: it would be sent "
                        "as written", suggestion(match.group(0), known, "known")))
    for match in _LOOSE.finditer(text):
        # -firstname-, -emial-, -Email-, -unsubscribe-: not placeholder-shaped, but one misspelt. Any other
        # word between dashes is left alone (only one close to a known placeholder is taken for one).
        if match.start() in shaped or match.group(0) in placeholders.KNOWN:
            continue
        hint = suggestion(match.group(0).lower(), known, None)
        if hint:
            hits.append(Hit(match.start(), match.group(0), f"unknown placeholder {match.group(0)}: it would be "
                            "sent as written", hint))
    for match in _HALF.finditer(text):
        if bool(match.group(1)) != bool(match.group(3)):
            whole = f"-{match.group(2)}-"
            hits.append(Hit(match.start(), match.group(0), f"malformed placeholder {match.group(0)!r}",
                            f"write {whole}, with a dash on both sides"))
    for match in _OTHER_SYNTAX.finditer(text):
        hits.append(Hit(match.start(), match.group(0), f"{match.group(0)!r} is another tool's placeholder syntax: "
                        "it would be sent as written", "use one of " + ", ".join(known)))
    return sorted(hits, key=lambda hit: hit.start)


# --- a subject that shouts -------------------------------------------------------------------------

# SpamAssassin's SUBJ_ALL_CAPS (Mail::SpamAssassin::Plugin::HeaderEval, subject_is_all_caps), as it counts:
# reply prefixes and the ends' white space taken off; a subject of one word or under 10 characters (we count
# UTF-8 bytes, as a SpamAssassin that reads the header undecoded does: the stricter of its two readings) is
# never shouting; then only the letters A-Z and a-z are kept, and at least one must be there and none lower
# case. Chinese, Japanese or Korean text has no lower case and is left out, so '密码 NLP 周报' is all capitals.
# (A subject encoded in a legacy Asian charset is spared; mailer writes UTF-8, which is not.)
_REPLY_PREFIXES = re.compile(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+", re.IGNORECASE)
_ASCII_SPACE = re.compile(r"[ \t\n\r\f\v]")
_LATIN_LETTER = re.compile(r"[A-Za-z]")


def subject_capitals(subject: str) -> str | None:
    """The subject's words in capitals ('NLP') when SpamAssassin's SUBJ_ALL_CAPS would fire on it, else None."""
    subject = _REPLY_PREFIXES.sub("", subject.strip(" \t\n\r\f\v"))
    if not _ASCII_SPACE.search(subject) or len(subject.encode("utf-8")) < 10:
        return None
    letters = "".join(_LATIN_LETTER.findall(subject))
    if not letters or letters != letters.upper():
        return None
    return " ".join(dict.fromkeys(re.findall(r"[A-Z]+", subject)))


# --- script and language --------------------------------------------------------------------------

# What most letters of a text in these languages are (Unicode script names, as unicodedata
# spells their first word). Languages not listed here are not checked.
_LANGUAGE_SCRIPTS = {
    **{code: {"CJK"} for code in ("zh", "yue", "wuu")},
    "ja": {"CJK", "HIRAGANA", "KATAKANA"},
    "ko": {"HANGUL", "CJK"},
    **{code: {"ARABIC"} for code in ("ar", "fa", "ur", "ps", "ckb", "ug", "sd")},
    **{code: {"HEBREW"} for code in ("he", "yi")},
    **{code: {"CYRILLIC"} for code in ("ru", "uk", "be", "bg", "mk", "kk", "ky", "mn", "tg")},
    "sr": {"CYRILLIC", "LATIN"},
    "el": {"GREEK"},
    **{code: {"DEVANAGARI"} for code in ("hi", "mr", "ne", "sa")},
    "bn": {"BENGALI"}, "ta": {"TAMIL"}, "te": {"TELUGU"}, "th": {"THAI"}, "ka": {"GEORGIAN"},
    "hy": {"ARMENIAN"}, "am": {"ETHIOPIC"}, "km": {"KHMER"}, "lo": {"LAO"}, "my": {"MYANMAR"},
    **{code: {"LATIN"} for code in (
        "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "nb", "nn", "fi", "is", "pl", "cs", "sk",
        "hu", "ro", "tr", "id", "ms", "vi", "ca", "eu", "gl", "et", "lv", "lt", "sl", "hr", "bs", "sq", "ga",
        "cy", "af", "sw", "tl", "fil", "mt", "lb", "az", "uz", "eo", "la")},
}
_SCRIPT_SUBTAGS = {"latn": {"LATIN"}, "cyrl": {"CYRILLIC"}, "hans": {"CJK"}, "hant": {"CJK"}, "hani": {"CJK"},
                   "arab": {"ARABIC"}, "hebr": {"HEBREW"}, "grek": {"GREEK"}, "deva": {"DEVANAGARI"},
                   "jpan": {"CJK", "HIRAGANA", "KATAKANA"}, "kore": {"HANGUL", "CJK"}, "thai": {"THAI"}}
_SCRIPT_LANGUAGE = {"CJK": "zh", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "ARABIC": "ar",
                    "HEBREW": "he", "CYRILLIC": "ru", "GREEK": "el", "DEVANAGARI": "hi", "THAI": "th",
                    "LATIN": "en"}
_NOT_PROSE = re.compile(r"https?://\S+|\]\([^)]*\)|`[^`]*`|-[a-z_]+-")


def expected_scripts(lang: str) -> set[str] | None:
    """The scripts text in `lang` is written in, or None when we do not know."""
    subtags = lang.lower().split("-")
    for subtag in subtags[1:]:
        if subtag in _SCRIPT_SUBTAGS:
            return _SCRIPT_SUBTAGS[subtag]
    return _LANGUAGE_SCRIPTS.get(subtags[0])


# One character of these scripts carries about a word (a Latin word is about 3 letters and
# more): weighting them keeps a Chinese issue full of English project names counted as Chinese.
_WEIGHT = {"CJK": 3, "HIRAGANA": 2, "KATAKANA": 2, "HANGUL": 2}


def script_counts(texts: list[str]) -> Counter[str]:
    """Weighted letters per script in `texts`, URLs, code and placeholders left out."""
    counts: Counter[str] = Counter()
    for text in texts:
        script = None
        for char in _NOT_PROSE.sub(" ", text):
            if char.isalpha():
                script = unicodedata.name(char, "UNKNOWN").split(" ")[0]
                counts[script] += _WEIGHT.get(script, 1)
            elif script and unicodedata.category(char) in ("Mn", "Mc"):
                # Vowel signs are half the letters of Thai and Hindi ('สวัสดี', 'नमस्ते'): they count
                # with the letter they sit on, or those issues look like their English names.
                counts[script] += _WEIGHT.get(script, 1)
            else:
                script = None
    return counts


def script_mismatch(lang: str, texts: list[str]) -> str | None:
    """Why `lang` does not match the text (most letters in a script the language does not use), or None."""
    expected = expected_scripts(lang)
    counts = script_counts(texts)
    total = sum(counts.values())
    if expected is None or total < 40:
        return None
    script, letters = counts.most_common(1)[0]
    if script in expected or letters / total < 0.5:
        return None
    guess = _SCRIPT_LANGUAGE.get(script)
    message = f"lang is {lang!r} but most of the text ({letters * 100 // total}%) is in {script.title()} script"
    return message + (f" (lang: {guess}?)" if guess else "")
