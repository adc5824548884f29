"""Errors a user can fix, reported as one line and a non-zero exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


class UsageError(Exception):
    """Bad input from the user: a wrong name, option, address or file."""

    exit_code = 2


def run_command(func: Callable[[Any], int], args: Any, prog: str = "iobench") -> int:
    """Call ``func(args)``; a UsageError becomes one line on stderr and its exit code."""
    try:
        return func(args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``iobench compare A B | head``): stop quietly, as
        # a shell tool does. Standard output is pointed at /dev/null so that the
        # interpreter's flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE, as the shell reports it
