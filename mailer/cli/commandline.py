"""The command the user ran, rebuilt from the options they gave, for the hints that say what to run next.

A hint typed by hand drifts from the command it stands for (the SMTP dry run's "to send for real" once
dropped `--backend smtp --workers 4`, and would have sent through SendGrid); one rebuilt from the parsed
options keeps every option the user set, in the command's own order, shell-quoted so that it runs when
pasted as printed.
"""

from __future__ import annotations

import shlex
from typing import Any

import click
from click.core import ParameterSource

# Where a value the user did not type comes from: left out of the command (an environment variable
# can hold a secret, and is still set when the command is pasted).
_NOT_TYPED = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, ParameterSource.ENVIRONMENT)


def command_line(ctx: click.Context | None = None, **changes: Any) -> str:
    """The current command as given, with `changes` (parameter name → value; None or False leaves it out).

    `command_line(live=True, test_to=None)` is the command with `--live` added and `--test-to` left out.
    """
    ctx = ctx or click.get_current_context()
    words = ctx.command_path.split()
    options: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        if name in changes:
            value = changes[name]
        elif ctx.get_parameter_source(name) in _NOT_TYPED:
            continue
        else:
            value = ctx.params.get(name)
        if value is None or value is False or value == ():
            continue
        if isinstance(param, click.Argument):
            words.extend(str(item) for item in (value if param.multiple or param.nargs != 1 else [value]))
            continue
        option = max(param.opts, key=len)  # the long form: a pasted command says what it does
        if isinstance(param, click.Option) and param.is_flag:
            options.append(option)
            continue
        for item in value if getattr(param, "multiple", False) else [value]:
            options.extend([option, str(item)])
    return shlex.join(words + options)

