"""Reading the subscribers CSV as an editor exports it from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.audience import subscribers as subscribers_module
from mailer.audience.subscribers import display_name, read_subscribers
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
        "subscribers.csv:3: invalid email address 'bob@': there must be something after the @-sign",
        "subscribers.csv:4: status must be one of subscribed, confirmed, unsubscribed, pending, bounced, complained "
        "(blank: subscribed), not 'maybe'",
        "subscribers.csv:5: missing email address",
        "subscribers.csv:6: invalid email address 'd e@example.com': the email address contains invalid "
        "characters before the @-sign: SPACE",
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
    assert [(s.line, s.reason) for s in result.skipped] == [
        (3, "invalid email address 'bob@': there must be something after the @-sign")]


def test_hostile_addresses_are_refused_with_their_line_and_shown_escaped(tmp_path: Path) -> None:
    rows = ["ok@example.com", "x:ada@example.org", "news:victim@example.net", "esc\x1b[2J@example.com",
            "back\x08space@example.com", "nul\x00@example.com", "zero\u200bwidth@example.com",
            "bidi\u202e@example.com"]
    path = csv_file(tmp_path, "email\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        read_subscribers(path, file_label="s.csv")
    message = str(info.value)
    assert [line.split(": ", 1)[0] for line in message.splitlines()[1:]] == [f"s.csv:{n}" for n in range(3, 10)]
    assert not any(char in message for char in "\x1b\x08\x00\u200b\u202e")  # escaped, never printed raw
    skipped = read_subscribers(path, skip_invalid=True)
    assert [s.email for s in skipped.subscribers] == ["ok@example.com"]
    assert [s.line for s in skipped.skipped] == list(range(3, 10))
    assert not any(char in s.email for s in skipped.skipped for char in "\x1b\x08\x00\u200b\u202e")


def test_one_mailbox_is_one_subscriber_and_different_mailboxes_stay_apart(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email\nkunde@bücher.example\nKunde@xn--bcher-kva.example\nstraße@example.com\n"
                              "strasse@example.com\nﬁsh@example.com\nfish@example.com\n")
    result = read_subscribers(path)
    assert [s.email for s in result.subscribers] == ["kunde@bücher.example", "straße@example.com",
                                                     "strasse@example.com", "ﬁsh@example.com", "fish@example.com"]
    assert [(s.line, s.reason) for s in result.skipped] == [(3, "duplicate of line 2")]


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


def test_a_missing_list_points_at_the_sample(workspace: Path, run_cli) -> None:
    result = run_cli("send", "issues/2020-12-13.yaml", "--subscribers", "subscribers.csv")
    assert result.exit_code == 1
    assert "subscribers.csv: file not found" in result.stderr and "subscribers.example.csv" in result.stderr


LARGE_LIST_CASES = {
    "duplicates, the first unsubscribed": "email,first_name,status\nada@example.com,Ada,unsubscribed\n"
                                          "bob@example.com,Bob,\nADA@example.com,Ada again,\nbob@example.com,B,\n",
    "a segment, tags and blank lines": "email,first_name,tags\n\nada@example.com,Ada,weekly;news\n"
                                       "bob@example.com,Bob,news\n\nzoë@example.com,Zoë,weekly\n",
    "quoted fields over several lines, CJK, a BOM": "\ufeffemail,first_name,last_name\n"
                                                    "li@example.com,\"李\",\"雷\"\n"
                                                    "x@example.com,\"Two\nlines\",\"Q\"\"uote\"\n",
    "invalid rows skipped": "email,first_name\nnot-an-address,X\nada@example.com,Ada\nb@@x,Y\nbob@example.com,Bob\n",
    "a repeat that is unsubscribed": "email,first_name,status\nada@example.com,Ada,\nADA@example.com,A,unsubscribed\n"
                                     "bob@example.com,Bob,\n",
    "a segment nobody is in, and a repeat": "email,first_name,tags\nada@example.com,Ada,news\nada@example.com,A,\n",
}


@pytest.mark.parametrize("hashes", ["as they are", "all alike", "in worker processes"])
@pytest.mark.parametrize("case", LARGE_LIST_CASES)
def test_a_large_list_read_from_its_file_is_the_same_list(tmp_path: Path, case: str, hashes: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subs.csv"
    path.write_text(LARGE_LIST_CASES[case], encoding="utf-8")
    options = {"skip_invalid": True, "segment": "weekly" if "segment" in case else None}
    held = read_subscribers(path, **options)
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(subscribers_module, "CHECK_PROCESSES", 2 if hashes == "in worker processes" else 1)
    monkeypatch.setattr(subscribers_module, "CHECK_BLOCK", 16)  # a block ends after nearly every row
    if hashes == "all alike":
        # A large list's repeats are found by a 64-bit hash of each address, then confirmed by the
        # address itself: two readers whose hashes collide are two readers.
        monkeypatch.setattr(subscribers_module, "hash", lambda key: 7, raising=False)
    streamed = read_subscribers(path, **options)
    assert isinstance(streamed.subscribers, subscribers_module.SpooledSubscribers)
    assert list(streamed.subscribers) == held.subscribers and len(streamed.subscribers) == len(held.subscribers)
    assert list(streamed.subscribers) == held.subscribers  # read again: the same
    assert streamed.subscribers[:2] == held.subscribers[:2]
    if held.subscribers:
        assert streamed.subscribers[0] == held.subscribers[0]
    assert streamed.skipped == held.skipped
    assert [str(w) for w in streamed.warnings] == [str(w) for w in held.warnings]


def spy_on_workers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each check in worker processes answered: True, done; False, given up (read in this process)."""
    answers: list[bool] = []
    real = subscribers_module._check_in_processes

    def spied(*args: object, **kwargs: object) -> bool:
        answers.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return answers[-1]

    monkeypatch.setattr(subscribers_module, "_check_in_processes", spied)
    return answers


def tricky_list(header: str = "email,first_name,last_name,status,tags") -> str:
    """A list with every kind of row a block boundary could fall on or inside, each with its line end."""
    rows = [f"\ufeff{header}\n"]
    for i in range(120):
        kind = i % 12
        if kind == 0:
            rows.append(f'r{i}@example.com,"Ada {i}","Q""uote",,"weekly;\nnews"\n')  # a field over two lines
        elif kind == 1:
            rows.append(f"r{i}@example.com,李{i},雷,,news;weekly\r\n")  # CRLF
        elif kind == 2:
            rows.append("\n")  # a blank line
        elif kind == 3:
            rows.append(f"not-an-address-{i},X,,,\n")  # invalid
        elif kind == 4:
            rows.append(f"R{i - 4}@EXAMPLE.com,Again,,,weekly\n")  # repeats the row four back (kind 0)
        elif kind == 5:
            rows.append(f"r{i}@example.com,Zoë 🔥,ليلى,unsubscribed,\r")  # a lone CR (an old Mac's line end)
        elif kind == 6:  # quotes inside an unquoted field (paired), then a field over three lines
            rows.append(f'r{i}@example.com,Dwayne "The Rock",,,"weekly;\nnews;\nmore"\n')
        elif kind == 7:
            rows.append(f"r{i}@example.com,Tab\there,,sometimes,\n")  # an invalid status
        elif kind == 8:
            rows.append(f'r{i}@example.com,Reader {i},,,"weekly;\rnews"\n')  # a CR inside a quoted field
        else:
            rows.append(f"r{i}@example.com,Reader {i},,,weekly\n")
    return "".join(rows)


@pytest.mark.parametrize("block", [1, 40, 333, 1 << 20])
@pytest.mark.parametrize("header", ["email,first_name,last_name,status,tags",
                                    'email,first_name,last_name,status,"tags\r"'])  # a header over two lines
def test_a_large_list_checked_in_worker_processes_is_read_as_in_one(tmp_path: Path, block: int, header: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    path = tmp_path / "subs.csv"
    path.write_bytes(tricky_list(header).encode("utf-8"))
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(subscribers_module, "CHECK_BLOCK", block)
    in_processes = spy_on_workers(monkeypatch)
    found = {}
    for processes in (1, 2):
        monkeypatch.setattr(subscribers_module, "CHECK_PROCESSES", processes)
        digest = hashlib.sha256()
        lenient = read_subscribers(path, skip_invalid=True, segment="weekly", digest=digest)
        with pytest.raises(InputError) as strict:
            read_subscribers(path)
        found[processes] = (list(lenient.subscribers), lenient.skipped, [str(w) for w in lenient.warnings],
                            lenient.invalid, [str(p) for p in strict.value.problems], digest.hexdigest())
    assert in_processes == [True, True]  # the lenient read and the strict one: neither fell back
    assert found[2] == found[1]
    subscribers, skipped, warnings, invalid, problems, digest = found[2]
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()  # every byte, once
    assert invalid == 20 and len(problems) == 20
    # Line numbers as an editor's text editor counts them (a CR alone ends a line too).
    lines = tricky_list(header).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for problem in problems[:4]:
        number = int(problem.split(":")[1])
        assert any(field and field in problem for field in lines[number - 1].split(",")), (problem, number)
    assert any(s.first_name == 'Dwayne "The Rock"' and s.tags == ("weekly", "news", "more") for s in subscribers)
    assert sum("duplicate of line" in w for w in warnings) == 10


@pytest.mark.parametrize("flaw", ["a quote never closed", "a byte that is not UTF-8", "a stray quote",
                                  "a stray quote, then a field over two lines"])
def test_a_large_list_a_worker_cannot_read_is_read_here_with_the_same_error(tmp_path: Path, flaw: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    rows = [f"r{i}@example.com,Reader {i}" for i in range(200)]
    if flaw == "a quote never closed":
        rows[150] = 'r150@example.com,"Reader 150'
    elif flaw == "a byte that is not UTF-8":
        rows[150] = "r150@example.com,Ren\udce9"
    elif flaw == "a stray quote":  # an odd quote in an unquoted field: every line end after it looks quoted
        rows[20] = 'r20@example.com,5" tall'
    else:  # the quotes of the line pair up, yet its line end is inside a quoted field
        rows[20] = 'r20@example.com,5" tall,"weekly;\nnews"'
        rows.insert(0, "")  # (as many lines before row 150 as in the other cases)
    path = tmp_path / "subs.csv"
    header = "email,first_name,tags\n" if "field" in flaw else "email,first_name\n"
    path.write_bytes((header + "\n".join(rows) + "\n").encode("utf-8", "surrogateescape"))
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(subscribers_module, "CHECK_BLOCK", 100)
    in_processes = spy_on_workers(monkeypatch)
    outcomes = []
    for processes in (1, 2):
        monkeypatch.setattr(subscribers_module, "CHECK_PROCESSES", processes)
        digest = hashlib.sha256()
        try:
            found = read_subscribers(path, digest=digest)
            outcomes.append((list(found.subscribers), digest.hexdigest()))
        except InputError as err:
            outcomes.append(([str(p) for p in err.problems], digest.hexdigest()))
    # Given up and read in this process; a stray quote alone (valid CSV) may also be read in the workers.
    assert in_processes == [False] or flaw == "a stray quote"
    assert outcomes[1] == outcomes[0]
    if "stray" in flaw:
        assert len(outcomes[1][0]) == 200 and outcomes[1][0][20].first_name == '5" tall'
    else:
        assert ":152:" in outcomes[1][0][0] or "line 152" in outcomes[1][0][0], outcomes[1][0]


def test_a_large_list_with_bad_rows_is_refused_whole_and_is_used_as_it_was_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\nnot-an-address\nbob@example.com\nb@@x\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_subscribers(path)
    assert [p.line for p in refused.value.problems] == [3, 5]  # every bad row, before anything is used
    path.write_text("email\nada@example.com\nbob@example.com\n", encoding="utf-8")
    found = read_subscribers(path)
    # Saved over, then deleted: the rows read are the ones checked, never a row nobody checked.
    path.write_text("email\nada@example.com\nbob@example.com\neve@example.com\nnot-an-address\n", encoding="utf-8")
    path.unlink()
    assert [s.email for s in found.subscribers] == ["ada@example.com", "bob@example.com"]
    assert len(found.subscribers) == 2 and found.subscribers[1].line == 3


def test_a_full_temporary_disk_is_an_error_naming_the_list_and_the_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(tempfile, "TemporaryFile", FullDisk)
    path = tmp_path / "subs.csv"
    path.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(6000)), encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_subscribers(path, file_label="subs.csv")
    message = str(refused.value)
    assert "subs.csv: cannot write the temporary file in" in message and "No space left on device" in message
    assert f"free some space in {tempfile.gettempdir()}, or point TMPDIR" in message


class FullDisk:
    """A temporary file (TemporaryFile or NamedTemporaryFile) on a full disk: it refuses its first write.
    A real full disk cannot be made here without privileges."""

    def __init__(self, *args: object, dir: str | None = None, **kwargs: object) -> None:  # noqa: A002 - tempfile's
        import tempfile

        self.name = str(Path(dir or tempfile.gettempdir()) / ".list-full.tmp")

    def write(self, data: bytes) -> int:
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("encoding", "data", "message"), [
    ("hex", b"email\nada@example.com\n", "subs.csv: 'hex' is not a text encoding"),
    ("rot13", b"email\nada@example.com\n", "subs.csv: 'rot13' is not a text encoding"),
    ("utf-16", "email\nada@example.com\n".encode("utf-16-le"), "subs.csv: not valid utf-16\n    hint: "),
])
def test_an_encoding_that_cannot_read_the_list_is_a_clear_error(tmp_path: Path, encoding: str, data: bytes,
                                                                 message: str) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(data)
    with pytest.raises(InputError) as refused:
        read_subscribers(path, file_label="subs.csv", encoding=encoding)
    assert message in str(refused.value) and "hint: " in str(refused.value)


@pytest.mark.parametrize(("first", "last", "written"), [
    ("梅梅", "韩", "韩梅梅"),  # Chinese: family name first, no space
    ("花子", "山田", "山田花子"),  # Japanese in kanji
    ("さくら", "佐藤", "佐藤さくら"),  # a given name in hiragana
    ("민준", "김", "김민준"),  # Korean
    ("Ada", "Lovelace", "Ada Lovelace"),  # Latin names stay as they are
    ("José", "García", "José García"),
    ("ليلى", "حداد", "ليلى حداد"),
    ("Mei", "韩", "Mei 韩"),  # two scripts: as written
    ("ジョン", "スミス", "ジョン スミス"),  # a foreign name in katakana: given name first
    ("李雷", "", "李雷"),
    ("", "韩", "韩"),
])
def test_east_asian_names_are_written_family_name_first(first: str, last: str, written: str) -> None:
    assert display_name(first, last) == written
