"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., object])


class UserError(ValueError):
    """A mistake the user can fix: bad config, bad data, bad flag. The message says how."""


class UserErrors(UserError):
    """Several mistakes found at once (e.g. every problem of one config file): a header, one line each."""

    def __init__(self, header: str, problems: list[str]):
        self.header, self.problems = header, list(problems)
        super().__init__("\n".join([header, *(f"  {p}" for p in self.problems)]))


def fail(message: str | UserError) -> None:
    """Print `abr-tune: error: <message>` on stderr and exit 2 (a UserErrors: its header, then one
    indented line per problem)."""
    if isinstance(message, UserErrors):
        lines = [message.header, *(f"  {' '.join(p.split())}" for p in message.problems)]
    else:
        lines = [" ".join(str(message).split())]
    print(f"abr-tune: error: {lines[0]}", *lines[1:], sep="\n", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def notice(header: str, lines: list[str] | None = None) -> None:
    """Print `abr-tune: notice: <header>` on stderr, then each of `lines` indented."""
    print(f"abr-tune: notice: {header}", *(f"  {line}" for line in lines or []), sep="\n", file=sys.stderr,
          flush=True)


def cli_entry(main: F) -> F:
    """Wrap a CLI `main` so a UserError becomes one clean error line and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            fail(err)

    return wrapper  # type: ignore[return-value]


class CliParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `abr-tune: error:` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(f"{message} (see --help)")
