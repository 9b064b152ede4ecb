"""Exceptions that carry a one-line message for the user.

The command line prints ``str(error)`` of any :class:`ZprimeError` as a single line and exits
with status 2; Python callers can catch the specific subclass.
"""

from __future__ import annotations


class ZprimeError(Exception):
    """Base class of all errors that zprime reports to a user as one line."""


class ConfigError(ZprimeError, ValueError):
    """A configuration field or an argument has a value zprime cannot accept."""


class InputError(ZprimeError, ValueError):
    """An input file is missing, unreadable, or lacks a required column."""


class RunLockedError(ZprimeError):
    """The output directory is in use by another run (it holds the directory's lock)."""
