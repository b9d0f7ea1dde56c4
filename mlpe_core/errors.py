"""Errors a person can fix by changing what they asked for.

The command line exits 2 on them with their one-line message (contract §3); the API answers 404 for
:class:`NotFound` and 422 for :class:`BadInput` (they are a ``KeyError`` and a ``ValueError``). Any other
exception that escapes a command is a bug or an outage: exit 1, "unexpected failure".
"""

from __future__ import annotations


class BadInput(ValueError):
    """A value, name or request the user can correct: a date that is not a date, a duplicate user, a list that is
    no longer a draft, a backup that is not one."""


class NotFound(KeyError):
    """An id that names nothing in the store (a leak, list, work order, alert, user, token, operator)."""

    def __str__(self) -> str:  # the message as written, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""
