"""The checked list kept in the state folder: the same bytes are not checked twice, anything else is."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailer.audience import listcache
from mailer.audience import subscribers as subscribers_module
from mailer.audience.listcache import read_subscribers_cached
from mailer.audience.subscribers import read_subscribers
from mailer.errors import InputError
from tests.audience.test_subscribers import LARGE_LIST_CASES, FullDisk
from tests.conftest import SAMPLE_ISSUE


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The lists read_subscribers checked (the cache calls it only when it has no entry for the bytes)."""
    seen: list[Path] = []

    def counted(path: Path, **options: object) -> object:
        seen.append(path)
        return read_subscribers(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(listcache, "read_subscribers", counted)
    return seen


def same(one, other) -> bool:
    return (list(one.subscribers) == list(other.subscribers) and one.skipped == other.skipped
            and [str(w) for w in one.warnings] == [str(w) for w in other.warnings])


@pytest.mark.parametrize("large", [False, True], ids=["held", "large"])
@pytest.mark.parametrize("case", LARGE_LIST_CASES)
def test_the_same_bytes_are_checked_once_and_read_back_the_same(tmp_path: Path, case: str, large: bool,
                                                                checks: list[Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if large:
        monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "subs.csv"
    path.write_text(LARGE_LIST_CASES[case], encoding="utf-8")
    options = {"file_label": "subs.csv", "skip_invalid": True, "segment": "weekly" if "segment" in case else None}
    first = read_subscribers_cached(path, tmp_path / "lists", **options)
    again = read_subscribers_cached(path, tmp_path / "lists", **options)
    assert checks == [path]  # the second read came from the state folder
    assert same(again, first) and same(again, read_subscribers(path, **options))
    assert len(again.subscribers) == len(first.subscribers)
    assert isinstance(again.subscribers, subscribers_module.SpooledSubscribers) == large


def test_names_in_every_script_survive_the_cache_byte_for_byte(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email,first_name,last_name,tags\nli@example.com,李雷,韩梅梅,新闻\nlayla@example.com,ليلى,,\n"
                    "zoe@example.com,Zoë 🔥,\"O'Neil, \"\"Jr\"\"\",a;b\nmüller@bücher.de,Jürgen,,\n", encoding="utf-8")
    read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    cached = read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    assert len(checks) == 1
    assert [(s.email, s.first_name, s.last_name, s.tags) for s in cached.subscribers] == [
        ("li@example.com", "李雷", "韩梅梅", ("新闻",)), ("layla@example.com", "ليلى", "", ()),
        ("zoe@example.com", "Zoë 🔥", 'O\'Neil, "Jr"', ("a", "b")), ("müller@bücher.de", "Jürgen", "", ())]


def test_a_changed_byte_or_option_reads_and_checks_the_file_again(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email,first_name,tags\nada@example.com,Ada,news\nbob@example.com,Bob,\n", encoding="utf-8")
    lists = tmp_path / "lists"
    read_subscribers_cached(path, lists, file_label="subs.csv")
    segment = read_subscribers_cached(path, lists, file_label="subs.csv", segment="news")
    assert [s.email for s in segment.subscribers] == ["ada@example.com"]
    path.write_text("email,first_name,tags\nada@example.com,Ada,news\nbob@example.com,Bob,\nnot-an-address,Eve,\n",
                    encoding="utf-8")
    with pytest.raises(InputError) as refused:  # the check still stops on a bad row, with its line
        read_subscribers_cached(path, lists, file_label="subs.csv")
    assert "subs.csv:4:" in str(refused.value)
    assert len(checks) == 3


def test_the_old_copy_of_a_list_goes_when_the_list_changes(tmp_path: Path) -> None:
    # A reader erased from the list must not live on in the state folder.
    path = tmp_path / "subs.csv"
    path.write_text("email\nerase.me@example.com\nstay@example.com\n", encoding="utf-8")
    lists = tmp_path / "lists"
    read_subscribers_cached(path, lists, file_label="subs.csv")
    (entry,) = lists.glob("*.list")
    assert b"erase.me@example.com" in entry.read_bytes()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # addresses and names: the user's alone
    path.write_text("email\nstay@example.com\n", encoding="utf-8")
    read_subscribers_cached(path, lists, file_label="subs.csv")
    assert all(b"erase.me" not in kept.read_bytes() for kept in lists.iterdir())


def test_only_the_newest_lists_are_kept(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    for number in range(listcache.KEEP + 2):
        path = tmp_path / f"list{number}.csv"
        path.write_text(f"email\nreader{number}@example.com\n", encoding="utf-8")
        read_subscribers_cached(path, lists, file_label=path.name)
    assert len(list(lists.glob("*.list"))) == listcache.KEEP


@pytest.mark.parametrize("large", [False, True], ids=["held", "large"])
def test_a_list_saved_while_it_was_checked_is_not_kept(tmp_path: Path, large: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if large:
        monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\n", encoding="utf-8")

    def saved_meanwhile(path: Path, **options: object) -> object:
        # Saved after the cache looked at the bytes, before the checking read: what was checked is
        # the new file, which must never be kept as the copy of the old one.
        path.write_text("email\nada@example.com\nbob@example.com\n", encoding="utf-8")
        return read_subscribers(path, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(listcache, "read_subscribers", saved_meanwhile)
    assert len(read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv").subscribers) == 2
    monkeypatch.setattr(listcache, "read_subscribers", read_subscribers)
    path.write_text("email\nada@example.com\n", encoding="utf-8")  # the old bytes again
    found = read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    assert [s.email for s in found.subscribers] == ["ada@example.com"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_copy_is_no_copy(tmp_path: Path, damage: str, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email,first_name\nada@example.com,Ada\n", encoding="utf-8")
    lists = tmp_path / "lists"
    expected = read_subscribers_cached(path, lists, file_label="subs.csv")
    (entry,) = lists.glob("*.list")
    data = entry.read_bytes()
    entry.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00\xff" * 50, "empty": b""}[damage])
    found = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert same(found, expected) and len(checks) == 2


def test_a_state_folder_that_cannot_be_written_is_no_cache_and_no_error(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\n", encoding="utf-8")
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("", encoding="utf-8")
    for _ in range(2):
        found = read_subscribers_cached(path, blocked / "lists", file_label="subs.csv")
        assert [s.email for s in found.subscribers] == ["ada@example.com"]
    assert len(checks) == 2


def test_a_send_after_its_dry_run_reads_the_checked_list_back(workspace: Path, run_cli, state_dir: Path,
                                                              checks: list[Path]) -> None:
    first = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert first.exit_code == 0, first.stderr
    assert len(checks) == 1 and len(list((state_dir / "lists").glob("*.list"))) == 1
    manifest = (state_dir / "outbox" / "2020-12-13" / "manifest.jsonl").read_text(encoding="utf-8")
    again = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert again.exit_code == 0, again.stderr
    assert len(checks) == 1  # the same bytes: not checked again, and planned the same
    assert again.stdout == first.stdout
    assert (state_dir / "outbox" / "2020-12-13" / "manifest.jsonl").read_text(encoding="utf-8") == manifest


def test_mailer_check_of_a_list_spares_the_send_its_check(workspace: Path, run_cli, state_dir: Path,
                                                          checks: list[Path]) -> None:
    checked = run_cli("check", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert checked.exit_code == 0, checked.stderr
    assert len(checks) == 1
    # `mailer check` reads with every invalid row listed (as --skip-invalid); the list has none, so the
    # send, which would stop on one, reads the same rows: from the copy.
    dry = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert dry.exit_code == 0, dry.stderr
    assert len(checks) == 1
    assert run_cli("check", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv").stdout == checked.stdout
    assert len(checks) == 1


def test_a_copy_made_with_skip_invalid_never_serves_a_send_without_it(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email,first_name\nada@example.com,Ada\nnot-an-address,Eve\n", encoding="utf-8")
    lists = tmp_path / "lists"
    lenient = read_subscribers_cached(path, lists, file_label="subs.csv", skip_invalid=True)
    assert lenient.invalid == 1 and [s.line for s in lenient.skipped] == [3]
    for _ in range(2):  # the bad row stops a read without --skip-invalid, copy or not
        with pytest.raises(InputError) as refused:
            read_subscribers_cached(path, lists, file_label="subs.csv")
        assert "subs.csv:3:" in str(refused.value)
    assert len(checks) == 3
    again = read_subscribers_cached(path, lists, file_label="subs.csv", skip_invalid=True)
    assert len(checks) == 3 and same(again, lenient)  # the refused reads left the lenient copy as it was
    # A list with no invalid row read without --skip-invalid serves a read with it, and keeps one key.
    path.write_text("email,first_name\nada@example.com,Ada\n", encoding="utf-8")
    strict = read_subscribers_cached(path, lists, file_label="subs.csv")
    with_option = read_subscribers_cached(path, lists, file_label="subs.csv", skip_invalid=True)
    assert len(checks) == 4 and same(with_option, strict) and with_option.key == strict.key
    assert strict.key in listcache.list_keys(path, file_label="subs.csv", skip_invalid=True)


def test_a_large_list_refused_or_saved_meanwhile_is_never_taken_for_the_file_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A large list's rows are spooled into the state folder as they are checked, to become its copy:
    # a list refused leaves nothing there; a list saved while it was checked is kept only as what was
    # checked (keyed by the bytes the check read), never as the file now there.
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    lists = tmp_path / "lists"
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\nnot-an-address\n", encoding="utf-8")
    with pytest.raises(InputError):
        read_subscribers_cached(path, lists, file_label="subs.csv")
    assert list(lists.iterdir()) == []

    def saved_meanwhile(path: Path, **options: object) -> object:
        found = read_subscribers(path, **options)  # type: ignore[arg-type]
        path.write_text("email\nada@example.com\n", encoding="utf-8")
        return found

    path.write_text("email\nada@example.com\nbob@example.com\nADA@example.com\n", encoding="utf-8")
    monkeypatch.setattr(listcache, "read_subscribers", saved_meanwhile)
    found = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert [s.email for s in found.subscribers] == ["ada@example.com", "bob@example.com"]  # still readable
    monkeypatch.undo()
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    now = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert [s.email for s in now.subscribers] == ["ada@example.com"]
    assert not list(lists.glob(".*.tmp"))


def test_a_copy_whose_rows_were_changed_is_no_copy(tmp_path: Path, checks: list[Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The key says which file the copy is of; the rows' digest that they are the rows written.
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "subs.csv"
    path.write_text("email\n" + "".join(f"r{i:03d}@example.com\n" for i in range(300)), encoding="utf-8")
    lists = tmp_path / "lists"
    read_subscribers_cached(path, lists, file_label="subs.csv")
    (entry,) = lists.glob("*.list")
    data = entry.read_bytes()
    entry.write_bytes(data.replace(b"r000@example.com", b"zz00@example.com"))
    found = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert len(checks) == 2 and list(found.subscribers)[0].email == "r000@example.com"


def test_a_temporary_file_another_run_is_writing_is_left_alone(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    lists = tmp_path / "lists"
    lists.mkdir()
    fresh, stale = lists / ".list-other.tmp", lists / ".list-killed.tmp"
    fresh.write_bytes(b"rows of a list another send is checking")
    stale.write_bytes(b"left by a run killed yesterday")
    os.utime(stale, (time.time() - 86400, time.time() - 86400))
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\n", encoding="utf-8")
    read_subscribers_cached(path, lists, file_label="subs.csv")
    assert fresh.exists() and not stale.exists()


def test_a_spool_removed_while_it_was_written_leaves_no_broken_copy(tmp_path: Path, checks: list[Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process, or the user, removes the spool's name while the list is checked: its rows are
    # still read through the open file, and no copy is made of it by reopening the name.
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    lists = tmp_path / "lists"
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\nbob@example.com\n", encoding="utf-8")

    def removed_meanwhile(path: Path, **options: object) -> object:
        found = read_subscribers(path, **options)  # type: ignore[arg-type]
        for temporary in lists.glob(".*.tmp"):
            temporary.unlink()
        return found

    monkeypatch.setattr(listcache, "read_subscribers", removed_meanwhile)
    found = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert [s.email for s in found.subscribers] == ["ada@example.com", "bob@example.com"]
    assert list(lists.iterdir()) == []
    monkeypatch.setattr(listcache, "read_subscribers", read_subscribers)
    again = read_subscribers_cached(path, lists, file_label="subs.csv")
    assert [s.email for s in again.subscribers] == ["ada@example.com", "bob@example.com"]


def test_a_list_from_a_pipe_is_read_once_and_not_kept(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "subs.fifo"
    os.mkfifo(fifo)

    done = threading.Event()

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write("email,first_name\nli@example.com,李雷\n")
        # A pipe gives its rows once: a second open (hashing first, then reading) would wait for a
        # writer for ever; it gets a list with one bad row instead, and the test fails, not hangs.
        # `done` is set once the read returned: waited for, so that a read slower than a fixed wait (2 s
        # before) cannot leave this thread blocked in open() for good, with no reader to come.
        if not done.wait(30):
            with fifo.open("w", encoding="utf-8") as out:
                out.write("email\nnot-an-address\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        found = read_subscribers_cached(fifo, tmp_path / "lists", file_label="<(…)")
    finally:
        done.set()
        writer.join(timeout=5)
    assert [(s.email, s.first_name) for s in found.subscribers] == [("li@example.com", "李雷")]
    assert not (tmp_path / "lists").exists() or not list((tmp_path / "lists").iterdir())


def test_another_address_library_version_checks_the_list_again(tmp_path: Path, checks: list[Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email\nmüller@bücher.de\n", encoding="utf-8")
    read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    monkeypatch.setattr(listcache, "_libraries", lambda: "email-validator==99")
    read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    assert len(checks) == 2


def test_a_full_state_folder_while_a_large_list_is_checked_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", FullDisk)
    path = tmp_path / "subs.csv"
    path.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(6000)), encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_subscribers_cached(path, tmp_path / "state" / "lists", file_label="subs.csv")
    message = str(refused.value)
    assert f"subs.csv: cannot write the temporary file in {tmp_path / 'state' / 'lists'}" in message
    assert "No space left on device" in message and "TMPDIR" not in message


def test_a_copy_whose_trailer_was_changed_is_no_copy(tmp_path: Path, checks: list[Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The trailer says how many rows there are and which lines repeat an earlier address: a changed
    # byte there would mail one reader twice and skip another.
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\nbob@example.com\nADA@example.com\ncy@example.com\n", encoding="utf-8")
    lists = tmp_path / "lists"
    expected = [s.email for s in read_subscribers_cached(path, lists, file_label="subs.csv").subscribers]
    (entry,) = lists.glob("*.list")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # a large list's copy too
    data = bytearray(entry.read_bytes())
    for position in range(len(data) - 40 - 200, len(data) - 40):  # each byte near the trailer's end
        changed = bytearray(data)
        changed[position] ^= 0x01
        entry.write_bytes(changed)
        found = read_subscribers_cached(path, lists, file_label="subs.csv")
        assert [s.email for s in found.subscribers] == expected == ["ada@example.com", "bob@example.com",
                                                                    "cy@example.com"]
        entry.write_bytes(data)


def test_a_state_folder_short_of_room_keeps_no_copy(tmp_path: Path, checks: list[Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10 << 30, 10 << 30, 10))
    lists = tmp_path / "lists"
    for large in (False, True):
        monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0 if large else 8 << 20)
        path = tmp_path / f"subs{large}.csv"
        path.write_text("email\nada@example.com\nbob@example.com\n", encoding="utf-8")
        found = read_subscribers_cached(path, lists, file_label="subs.csv")
        assert [s.email for s in found.subscribers] == ["ada@example.com", "bob@example.com"]
    assert list(lists.iterdir()) == []  # the little room there is is the send's


def test_the_name_errors_give_the_list_is_part_of_the_key(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "subs.csv"
    path.write_text("email\nada@example.com\nADA@example.com\n", encoding="utf-8")
    read_subscribers_cached(path, tmp_path / "lists", file_label="subs.csv")
    other = read_subscribers_cached(path, tmp_path / "lists", file_label="lists/weekly.csv")
    assert len(checks) == 2 and str(other.warnings[0]).startswith("lists/weekly.csv:3: duplicate of line 2")
