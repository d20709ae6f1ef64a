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


def fail(message: str) -> None:
    """Print `abr-tune: error: <message>` on stderr and exit 2."""
    first_line = " ".join(str(message).split())
    print(f"abr-tune: error: {first_line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def cli_entry(main: F) -> F:
    """Wrap a CLI `main` so a UserError becomes one clean error line and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            fail(str(err))

    return wrapper  # type: ignore[return-value]


class CliParser(argparse.ArgumentParser):
    """argparse whose usage errors are one `abr-tune: error:` line and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        fail(f"{message} (see --help)")
