"""The error every command reports as an operator's mistake: one line naming the problem and the fix, status 2."""

from __future__ import annotations

__all__ = ["OperatorError"]


class OperatorError(Exception):
    """A mistake in the command or its inputs (a missing folder, a wrong file, options that cannot go together)."""
