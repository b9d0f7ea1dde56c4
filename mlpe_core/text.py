"""Escaping for text that came from a file or a person before it reaches Markdown or HTML.

Streamlit renders Markdown in titles, captions, alerts, metric labels and help texts: an asset id such as
``![x](http://host/x.png)`` became an image the browser fetched, ``:red[...]`` a colour, ``$...$`` maths.
:func:`md` makes any value literal text: the characters that open Markdown or Streamlit syntax (emphasis,
code, link and image brackets, directives, maths, tables, strike-through) are backslash-escaped (CommonMark allows
it for any ASCII punctuation), ``<`` and ``>`` become entities, line breaks become spaces, and a leading
list, heading or quote marker is escaped, so a value cannot start a block. Plain punctuation (``.``, ``,``,
``-`` inside words) is left as it is so the source stays readable. :func:`html` is for HTML built by hand.
"""

from __future__ import annotations

import html as _html
import re

_SYNTAX = re.compile(r"([\\`*_{}\[\]#|~:$])")  # ( ) and ! only act next to [ ], which is escaped
_BULLET = re.compile(r"^(\s*)([-+=])")  # a list item or a setext heading underline
_NUMBERED = re.compile(r"^(\s*\d+)([.)])")  # an ordered list item


def md(value: object) -> str:
    """``value`` as Markdown that renders exactly as the text it is (None as an empty string)."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    text = _SYNTAX.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;")
    text = _BULLET.sub(r"\1\\\2", text, count=1)
    return _NUMBERED.sub(r"\1\\\2", text, count=1)


def html(value: object) -> str:
    """``value`` escaped for HTML text or an attribute."""
    return "" if value is None else _html.escape(str(value), quote=True)
