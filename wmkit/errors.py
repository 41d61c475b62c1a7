"""User-facing errors. The CLI prints ``str(error)`` as one line and exits with ``exit_code``.

Raise these (never a bare exception) for bad input: the message names the input and says what to
do about it.
"""

import functools
import sys


class WmkitError(Exception):
    """Base class of errors reported to the user as one line, without a traceback."""

    exit_code = 1


class RecipeError(WmkitError, ValueError):
    """A recipe, an override or an environment variable is invalid (exit code 2)."""

    exit_code = 2


class DataError(WmkitError):
    """A data source is missing, unreadable, of the wrong schema, or empty after filtering."""


class CheckpointError(WmkitError):
    """A checkpoint or run directory is missing, truncated, corrupted or incompatible."""


class PluginError(WmkitError):
    """A plugin failed to load, or two plugins registered the same name of one kind."""


class RunError(WmkitError):
    """A run directory conflicts with the request (exists, or differs on resume)."""


def reports_errors(fn):
    """Decorator for CLI commands: a :class:`WmkitError` becomes one ``error: …`` line on stderr and
    its exit code, Ctrl-C exits 130; no traceback either way."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WmkitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
