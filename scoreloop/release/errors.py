"""The one error every release step raises."""

from __future__ import annotations


class ReleaseError(RuntimeError):
    """A release step failed: the message says what, where, and how to fix it."""
