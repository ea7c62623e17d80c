"""The errors lazymeta reports to a user as one line: each names the setting or file, the value and the fix."""
from __future__ import annotations


class LazymetaError(Exception):
    """Base of the errors the command line prints without a traceback."""


class ConfigError(LazymetaError, ValueError):
    """A setting that cannot run: unknown key, wrong type, value out of range."""


class TrainingError(LazymetaError, RuntimeError):
    """Training cannot go on (a non-finite loss, a meta-batch that does not split over the processes)."""


class RunDirError(LazymetaError, OSError):
    """A run directory that cannot be used: held by another process, already holding a run, unreadable files."""
