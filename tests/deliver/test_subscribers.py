"""Reading the subscribers CSV as an editor exports it from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.deliver.subscribers import email_problem, read_subscribers
from mailer.errors import InputError
from tests.conftest import REPO


def csv_file(tmp_path: Path, text: str, *, bom: bool = False, encoding: str = "utf-8") -> Path:
    path = tmp_path / "subscribers.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def test_example_file_reads() -> None:
    result = read_subscribers(REPO / "subscribers.example.csv")
    assert len(result.subscribers) == 18
    assert {s.reason for s in result.skipped} == {"unsubscribed"}
    assert any(s.first_name == "李雷" for s in result.subscribers)


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_with_or_without_bom(tmp_path: Path, bom: bool) -> None:
    path = csv_file(tmp_path, "email,first_name\nzoe@example.com,Zoë\nlayla@example.com,ليلى\n", bom=bom)
    result = read_subscribers(path)
    assert [(s.email, s.first_name) for s in result.subscribers] == [
        ("zoe@example.com", "Zoë"), ("layla@example.com", "ليلى")]


def test_not_utf8_names_the_line_and_suggests_encoding(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email,first_name\na@example.com,Ann\nz@example.com,Zoë\n", encoding="cp1252")
    with pytest.raises(InputError) as info:
        read_subscribers(path, file_label="subscribers.csv")
    assert "subscribers.csv:3: not valid UTF-8 (byte 0xeb)" in str(info.value)
    assert "--encoding" in str(info.value)
    result = read_subscribers(path, encoding="cp1252")
    assert result.subscribers[1].first_name == "Zoë"


def test_every_invalid_row_is_reported_at_once(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email,first_name,status\nok@example.com,A,subscribed\nbob@,B,subscribed\n"
                              "carol@example.com,C,maybe\n,D,subscribed\nd e@example.com,E,subscribed\n")
    with pytest.raises(InputError) as info:
        read_subscribers(path, file_label="subscribers.csv")
    lines = str(info.value).splitlines()[1:]
    assert lines == [
        "subscribers.csv:3: invalid email address 'bob@'",
        "subscribers.csv:4: status must be 'subscribed' or 'unsubscribed', not 'maybe'",
        "subscribers.csv:5: missing email address",
        "subscribers.csv:6: invalid email address 'd e@example.com'",
    ]


@pytest.mark.parametrize(("row", "error"), [('a@example.com,"Ann"x', "',' expected after '\"'"),
                                            ('a@example.com,"Ann', "unexpected end of data")])
def test_a_broken_quote_names_its_own_line(tmp_path: Path, row: str, error: str) -> None:
    rows = ["ok@example.com,Ok", row] + [f"r{i}@example.com,R" for i in range(5)]
    path = csv_file(tmp_path, "email,first_name\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        read_subscribers(path, file_label="s.csv")
    assert str(info.value).splitlines()[1] == f"s.csv:3: not a readable CSV: {error}"


def test_skip_invalid_keeps_going_and_reports(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email\nok@example.com\nbob@\n")
    result = read_subscribers(path, skip_invalid=True)
    assert [s.email for s in result.subscribers] == ["ok@example.com"]
    assert [(s.line, s.reason) for s in result.skipped] == [(3, "invalid email address 'bob@'")]


def test_duplicates_are_case_insensitive_and_warned(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email\nBob@Example.com\n  bob@example.COM \nbob@example.com\n")
    result = read_subscribers(path, file_label="s.csv")
    assert [s.email for s in result.subscribers] == ["Bob@example.com"]
    assert [str(w) for w in result.warnings] == [
        "s.csv:3: duplicate of line 2 (bob@example.com); only line 2 is used",
        "s.csv:4: duplicate of line 2 (bob@example.com); only line 2 is used",
    ]


def test_unsubscribed_are_never_returned_even_if_listed_again(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email,status\nann@example.com,unsubscribed\nANN@example.com,subscribed\n")
    result = read_subscribers(path)
    assert result.subscribers == []


def test_header_is_trimmed_and_checked(tmp_path: Path) -> None:
    path = csv_file(tmp_path, " Email , First Name ,signup_date\na@example.com,Ann,2020\n")
    result = read_subscribers(path, file_label="s.csv")
    assert result.subscribers[0].first_name == "Ann"
    assert [w.message for w in result.warnings] == ["column 'signup_date' is not used"]
    with pytest.raises(InputError, match=r"s.csv:1: unknown column 'emial'\n    hint: did you mean 'email'\?"):
        read_subscribers(csv_file(tmp_path, "emial,first_name\na@example.com,A\n"), file_label="s.csv")
    with pytest.raises(InputError, match="no 'email' column"):
        read_subscribers(csv_file(tmp_path, "address\nA\n"))


def test_segment_by_tag(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'email,tags\na@example.com,"nlp;weekly"\nb@example.com,weekly\n')
    result = read_subscribers(path, segment="nlp")
    assert [s.email for s in result.subscribers] == ["a@example.com"]
    assert result.skipped[0].reason == "not tagged 'nlp'"


@pytest.mark.parametrize("address", ["a@example.com", "first.last+tag@sub.example.co.uk", "用户@例子.广告"])
def test_valid_addresses(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize("address", ["a@b", "a@@example.com", "a@example..com", "a b@example.com",
                                     "Smith, John <a@x.com>", "a@example.c", "a" * 65 + "@example.com"])
def test_invalid_addresses(address: str) -> None:
    assert email_problem(address)
