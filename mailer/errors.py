"""The error base, the problems it carries, and the exit codes the CLI returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes; documented in docs/errors.md's table."""

    OK = 0
    INPUT_ERROR = 1  # bad issue, config, layout or subscriber file: nothing was written or sent
    USAGE = 2  # wrong command-line arguments (click's own code)
    DELIVERY_FAILED = 3  # a send stopped or some recipients were not accepted
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    field: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class MailerError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code: ExitStatus = ExitStatus.INPUT_ERROR


class InputError(MailerError):
    """One or more problems in a file the user wrote; all of a file's problems at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun}:\n" + "\n".join(str(p) for p in self.problems))


class RenderError(MailerError):
    """A layout failed to render or compile."""


class ServeError(MailerError):
    """The preview server cannot listen where it was asked to (port taken, address not ours)."""


class ConfigError(MailerError):
    """The workspace or its settings cannot be used."""
