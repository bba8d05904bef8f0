"""When a scheduled send goes (`mailer send --at`): a time as an editor says it, read in the newsletter's time zone.

"sunday 08:00", "tomorrow 07:30", "2026-12-13 08:00", "13 December 08:00", each optionally followed by a
zone ("… Europe/Berlin", "… UTC"), or an ISO time with its offset ("2026-12-13T08:00+01:00"). The words are
read by parsedatetime, then held to what a schedule needs: every word understood, a day and a time of day,
one meaning only, a time that exists in the zone, and not in the past. Each refusal says what was understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.config import zone_names
from mailer.errors import ExitStatus, MailerError
from mailer.schema import suggestion

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Words that make a weekday mean two things: "next sunday" is the coming one to some and the one
# after to others (parsedatetime 2.6 reads the one after; dateparser 1.5 the coming one).
_SHIFTERS = ("next", "this", "coming", "last")


class SendTimeError(MailerError):
    """An --at time that cannot be scheduled as written: the message says what mailer understood."""

    exit_code = ExitStatus.USAGE


class PastSendTimeError(SendTimeError):
    """An --at time already gone: outside SendGrid's window, as one more than 72 hours ahead (exit 3)."""

    exit_code = ExitStatus.DELIVERY_FAILED


@dataclass(frozen=True)
class SendTime:
    when: datetime  # aware, in `zone`
    zone: str  # the IANA name it was read in

    def describe(self) -> str:
        """'Sunday 13 December 2026, 08:00 EST (America/New_York)'."""
        return describe(self.when, self.zone)


def describe(when: datetime, zone: str) -> str:
    return f"{when:%A} {when.day} {when:%B %Y, %H:%M} {when.tzname()} ({zone})"


def zone_named(name: str) -> ZoneInfo | None:
    """The tz database's zone called `name` exactly ("Europe/Berlin", "UTC"), or None."""
    if not name or not name[0].isalpha():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # not a key (a path, ".."); a tz folder ("Europe")
        return None


def parse_send_time(text: str, *, zone_name: str | None, now: datetime) -> SendTime:
    """Read `text` as a moment in `zone_name` (mailer.yaml's time_zone) unless it names its own zone.

    `now` is aware; the result is in the future, else SendTimeError. parsedatetime resolves words against
    `now` in the zone: "tomorrow" is tomorrow there.
    """
    shown = text.strip()
    words = shown.split()
    zone = zone_named(words[-1]) if len(words) > 1 else None
    if zone is not None:
        zone_name, words = words[-1], words[:-1]
    elif len(words) > 1 and "/" in words[-1] and words[-1][0].isalpha():
        raise SendTimeError(f"--at {shown!r}: no time zone is called {words[-1]!r}\n"
                            f"    hint: {suggestion(words[-1], zone_names(), None) or 'a zone from the tz database'}"
                            " (e.g. \"Europe/Berlin\", \"America/New_York\" or \"UTC\")")
    elif zone_name is not None:
        zone = ZoneInfo(zone_name)
    when = _iso(" ".join(words), zone)
    if when is None:
        if zone is None or zone_name is None:
            raise SendTimeError(
                f"--at {shown!r} names no time zone, and mailer.yaml has no time_zone to read it in\n"
                "    hint: add `time_zone: Europe/Berlin` (your newsletter's zone, from the tz database) to "
                "mailer.yaml, or end the time with one: \"sunday 08:00 Europe/Berlin\"")
        when = _words(" ".join(words), shown, zone, zone_name, now)
    if not isinstance(when.tzinfo, ZoneInfo):  # an ISO time with its own offset: that is its zone
        zone_name = "UTC" + when.isoformat(timespec="minutes")[16:] if when.utcoffset() else "UTC"
    result = SendTime(when, zone_name or "UTC")
    if when <= now:
        raise PastSendTimeError(f"--at {shown!r} is in the past: read as {result.describe()}, "
                            f"{_ago(now - when)} ago\n    hint: give a time still to come, e.g. \"tomorrow 07:30\"")
    return result


def _iso(text: str, zone: ZoneInfo | None) -> datetime | None:
    """An ISO 8601 date and time (with or without its offset), or None when `text` is not one."""
    if not text[:4].isdigit() or len(text) < 16:  # a date and at least hours and minutes
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        if zone is None:
            return None  # the caller says a zone is needed
        return _in_zone(when, zone, text)
    return when


def _words(text: str, shown: str, zone: ZoneInfo, zone_name: str, now: datetime) -> datetime:
    import parsedatetime  # here: only a scheduled send pays for it (25 ms)

    calendar = parsedatetime.Calendar(version=parsedatetime.VERSION_CONTEXT_STYLE)
    local_now = now.astimezone(zone)
    found = calendar.nlp(text, sourceTime=local_now.replace(tzinfo=None).timetuple()) or ()
    understood = " ".join(match[4] for match in found)
    left = text
    for match in found:
        left = left.replace(match[4], " ", 1)
    if not found or left.split():
        what = f"; it understood only {understood!r}" if found else ""
        raise SendTimeError(f"--at {shown!r}: mailer did not understand {' '.join(left.split())!r}{what}\n"
                            f"    hint: {_FORMS}")
    if len(found) > 1:
        raise SendTimeError(f"--at {shown!r} reads as {len(found)} times ({understood!r}): give one\n"
                            f"    hint: {_FORMS}")
    naive, context, *_ = found[0]
    lowered = text.lower()
    if "/" in text:
        raise SendTimeError(f"--at {shown!r}: a date with slashes reads differently by country (12/01 is "
                            "1 December or 12 January)\n    hint: write it as 2026-12-13 or \"13 December\"")
    if not context.hasDate or not (context.accuracy & context.ACU_DAY):
        raise SendTimeError(f"--at {shown!r} names no day (read as {describe(_in_zone(naive, zone, shown), zone_name)})"
                            f"\n    hint: say which day: \"tomorrow 07:30\", \"sunday 08:00\" or \"2026-12-13 08:00\"")
    if not (context.accuracy & (context.ACU_HOUR | context.ACU_MIN)):
        raise SendTimeError(f"--at {shown!r} names no time of day mailer can read (read as the day "
                            f"{naive:%A} {naive.day} {naive:%B %Y})\n"
                            "    hint: add it in 24-hour form or with am/pm: \"sunday 08:00\", \"sunday 8am\"")
    for index, word in enumerate(lowered.split()):
        weekday = _weekday(word)
        if weekday is None:
            continue
        before = lowered.split()[index - 1] if index else ""
        if before in _SHIFTERS:
            raise SendTimeError(
                f"--at {shown!r} is ambiguous: {before!r} {WEEKDAYS[weekday]} means the coming one to some and the "
                f"one after to others (mailer read {naive:%A} {naive.day} {naive:%B})\n"
                f"    hint: write \"{WEEKDAYS[weekday]} {naive:%H:%M}\" for the coming one, or the date: "
                f"\"{naive:%Y-%m-%d %H:%M}\"")
        if weekday == local_now.weekday():
            # parsedatetime reads today's own weekday as a week ahead, even for a time still to come today.
            raise SendTimeError(
                f"--at {shown!r} is ambiguous: today is {WEEKDAYS[weekday]} (mailer read {naive:%A} {naive.day} "
                f"{naive:%B}, a week ahead)\n"
                f"    hint: write \"today {naive:%H:%M}\", or the date: \"{naive:%Y-%m-%d %H:%M}\"")
    return _in_zone(naive, zone, shown)


def _weekday(word: str) -> int | None:
    for index, name in enumerate(WEEKDAYS):
        if len(word) >= 3 and name.startswith(word.rstrip(",.")):
            return index
    return None


def _in_zone(naive: datetime, zone: ZoneInfo, shown: str) -> datetime:
    """`naive` as a wall-clock time in `zone`, refused where the clocks skip it or pass it twice."""
    when = naive.replace(tzinfo=zone)
    other = naive.replace(tzinfo=zone, fold=1)
    if when.utcoffset() != other.utcoffset():
        # Either the clocks go back (the time happens twice) or forward (it never happens).
        back_to_wall = when.astimezone(ZoneInfo("UTC")).astimezone(zone).replace(tzinfo=None)
        if back_to_wall != naive:
            raise SendTimeError(f"--at {shown!r}: {naive:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks "
                                "go forward then)\n    hint: pick a time an hour later or earlier")
        raise SendTimeError(f"--at {shown!r}: {naive:%Y-%m-%d %H:%M} happens twice in {zone.key} (the clocks go "
                            f"back then: {when.tzname()} or {other.tzname()})\n"
                            "    hint: pick another time, or give the offset: "
                            f"\"{when.isoformat(timespec='minutes')}\" ({when.tzname()})")
    return when


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{hours // 24} days"


_FORMS = ('write a day and a time: "sunday 08:00", "tomorrow 07:30", "2026-12-13 08:00" or "13 December 8am" '
          '(in mailer.yaml\'s time_zone), optionally followed by a zone: "… Europe/Berlin", "… UTC"')
