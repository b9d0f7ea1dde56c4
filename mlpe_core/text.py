"""Escaping for text that came from a file or a person before it reaches Markdown or HTML.

Streamlit renders Markdown in titles, captions, alerts, metric labels and help texts: an asset id such as
``![x](http://host/x.png)`` became an image the browser fetched, ``:red[...]`` a colour, ``$...$`` maths.
:func:`md` makes any value literal text: every ASCII punctuation character is backslash-escaped (CommonMark
allows it for each of them), ``<`` and ``>`` become entities, and line breaks become spaces so a value cannot
start a heading or a list. :func:`html` is for the few places that build HTML themselves.
"""

from __future__ import annotations

import html as _html
import re

_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$&%\"'=,;?/@^])")


def md(value: object) -> str:
    """``value`` as Markdown that renders exactly as the text it is (None as an empty string)."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    text = _PUNCT.sub(r"\\\1", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def html(value: object) -> str:
    """``value`` escaped for HTML text or an attribute."""
    return "" if value is None else _html.escape(str(value), quote=True)
