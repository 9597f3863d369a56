"""The errors spikerl raises for expected failures, under one base class.

Every failure a user can cause or fix (a bad config value, an unknown env id, a missing
optional dependency, an unusable run folder, a corrupt checkpoint, a diverged run) raises a
:class:`SpikerlError` subclass whose message is one line naming the input at fault. The command
line catches :class:`SpikerlError` once and prints ``error: <message>`` with the class's exit
code (2: the input is wrong, 1: the run could not go on); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["EXIT_INTERRUPTED", "MissingDependencyError", "SpikerlError", "UsageError"]

#: The exit status of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as a shell's).
EXIT_INTERRUPTED = 130


class SpikerlError(Exception):
    """An expected failure, reported as one line; ``exit_code`` is the CLI's exit status."""

    exit_code = 1


class UsageError(SpikerlError, ValueError):
    """The input is wrong (config key or value, env id, command-line argument): exit status 2."""

    exit_code = 2


class MissingDependencyError(UsageError):
    """An optional dependency that the request needs is not installed; says what to install."""
