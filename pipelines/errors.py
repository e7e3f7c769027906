"""The one base class of scoreloop's own errors.

Every error the domain raises on purpose (bad input, a missing champion, a refused snapshot, ...)
derives from :class:`ScoreloopError`, so a front door catches ``ScoreloopError`` and reports its
message, while anything else is a bug that keeps its traceback. Each subclass also keeps the
builtin base it always had (``ValueError`` or ``RuntimeError``).
"""

from __future__ import annotations


class ScoreloopError(Exception):
    """An expected failure with a message that says what, where and how to fix it."""
