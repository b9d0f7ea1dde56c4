"""Errors a person can fix by changing what they asked for.

The command line exits 2 on them with their one-line message (contract §3); the API answers 404 for
:class:`NotFound`, 409 for :class:`Conflict` and 422 for :class:`BadInput` (they are a ``KeyError`` and a
``ValueError``). Any other exception that escapes a command is a bug or an outage: exit 1, "unexpected failure".
"""

from __future__ import annotations

import re


class BadInput(ValueError):
    """A value, name or request the user can correct: a date that is not a date, a duplicate user, a list that is
    no longer a draft, a backup that is not one.

    ``options``: the inputs the message names, written as the command line's flags (``--top``, ``--date``); the
    message as written is the command line's. Another face names its own field with :meth:`worded`."""

    def __init__(self, message: str = "", *, options: tuple[str, ...] = ()):
        super().__init__(message)
        self.options = tuple(options)

    def worded(self, names: dict[str, str] | None = None) -> str:
        """The message naming each of ``options`` as ``names`` says (``{"date": "plan_date"}``), else by its bare
        name (``--top`` → ``top``): how a face that has fields, not flags, words it."""
        msg = str(self)
        for opt in sorted(self.options, key=len, reverse=True):
            msg = re.sub(rf"--{re.escape(opt)}\b", (names or {}).get(opt, opt), msg)
        return msg


class NotFound(KeyError):
    """An id that names nothing in the store (a leak, list, work order, alert, user, token, operator)."""

    def __str__(self) -> str:  # the message as written, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


class Conflict(BadInput):
    """A request that is well formed but that the record's current state refuses: approving a list that is no
    longer a draft, withdrawing one already withdrawn. The API answers 409; the command line exits 2."""
